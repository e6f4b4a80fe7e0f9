//! Use case: a worker finished one item. The report that crosses the finish
//! line records the completion and publishes `job.completed` from it; a
//! retry of that report answers `Completed` again and publishes only what is
//! still unpublished, under the recorded event id.

use super::{
    ItemId, ItemReport, ItemUpdate, ProgressService, ProgressUseCaseError, ProjectId, ReportKey,
};

impl ProgressService {
    /// Counts one item of `project` done (and failed, when `is_error`) and
    /// applies the finish line in the same atomic step. The report that
    /// crosses it gets [`super::ItemOutcome::Completed`] and publishes
    /// `job.completed` (a failed publish is left to the relay, not
    /// returned); every other gets `Processing`. An `item` already counted
    /// changes nothing and reports `duplicate`. Fails only with
    /// [`ProgressUseCaseError::Store`] (`NotFound` for a project without a
    /// record).
    ///
    /// Without an `item_id` the report gets a token of this call: the
    /// store's own retries count it once, but a new call is a new report.
    #[tracing::instrument(name = "progress.mark_item_done", skip_all)]
    pub async fn mark_item_done(
        &self,
        project: &ProjectId,
        is_error: bool,
        item: Option<&ItemId>,
    ) -> Result<ItemUpdate, ProgressUseCaseError> {
        let report = ItemReport {
            is_error,
            key: match item {
                Some(item) => ReportKey::Item(item.clone()),
                None => ReportKey::Call(self.call_token()),
            },
            stamp: self.stamp(),
        };
        let update = self.store.mark_item_done(project, &report).await?;
        self.deliver(update.completion.as_ref()).await;
        Ok(update)
    }
}
