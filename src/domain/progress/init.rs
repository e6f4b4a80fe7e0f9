//! Use case: start tracking a project (`INITIALIZING`, zero counters).

use super::{Progress, ProgressService, ProgressUseCaseError, ProjectId};

impl ProgressService {
    /// Starts `project` at `INITIALIZING` with zero counters and a fresh
    /// 7-day TTL, in one round trip, replacing any earlier record and
    /// forgetting its reports; returns the stored state. Fails only with
    /// [`ProgressUseCaseError::Store`].
    #[tracing::instrument(name = "progress.init_project", skip_all)]
    pub async fn init_project(
        &self,
        project: &ProjectId,
    ) -> Result<Progress, ProgressUseCaseError> {
        Ok(self.store.init(project).await?)
    }
}
