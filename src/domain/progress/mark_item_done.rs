//! Use case: a worker finished one item; the caller that crosses the finish
//! line publishes `job.completed`, exactly once per project.

use super::{ItemId, ItemOutcome, ItemUpdate, ProgressService, ProgressUseCaseError, ProjectId};

impl ProgressService {
    #[tracing::instrument(name = "progress.mark_item_done", skip_all)]
    pub async fn mark_item_done(
        &self,
        project: &ProjectId,
        is_error: bool,
        item: Option<&ItemId>,
    ) -> Result<ItemUpdate, ProgressUseCaseError> {
        let update = self.store.mark_item_done(project, is_error, item).await?;
        if update.outcome == ItemOutcome::Completed {
            self.announce_completion(project, &update.progress).await?;
        }
        Ok(update)
    }
}
