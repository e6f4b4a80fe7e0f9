//! Use case: the collector reports how many items a project has and where it
//! is; ending discovery after the last item was processed completes the
//! project here (the late `PROCESSING_WAIT`), and a retry of that very
//! request answers the same.

use super::{
    MAX_TOTAL, ProgressService, ProgressUseCaseError, ProjectId, ProjectStatus, TotalUpdate,
};

impl ProgressService {
    /// Sets `total` and `status` together and applies the finish line in the
    /// same atomic step; publishes `job.completed` if this call completed
    /// the project (a failed publish is left to the relay, not returned).
    ///
    /// Fails with [`ProgressUseCaseError::DoneNotSettable`] for `DONE`,
    /// [`ProgressUseCaseError::TotalTooLarge`] over [`MAX_TOTAL`] (nothing
    /// written either way), or [`ProgressUseCaseError::Store`]: `NotFound`
    /// for a project without a record, `AlreadyDone` once it is `DONE`
    /// (except for a retry of the very call that completed it, which gets
    /// the same answer again).
    #[tracing::instrument(name = "progress.set_total", skip_all)]
    pub async fn set_total(
        &self,
        project: &ProjectId,
        total: u64,
        status: ProjectStatus,
    ) -> Result<TotalUpdate, ProgressUseCaseError> {
        if status == ProjectStatus::Done {
            return Err(ProgressUseCaseError::DoneNotSettable);
        }
        if total > MAX_TOTAL {
            return Err(ProgressUseCaseError::TotalTooLarge { max: MAX_TOTAL });
        }
        let update = self
            .store
            .set_total(project, total, status, &self.stamp())
            .await?;
        self.deliver(update.completion.as_ref()).await;
        Ok(update)
    }
}
