//! Use case: start tracking a project (`INITIALIZING`, zero counters).

use super::{Progress, ProgressService, ProgressUseCaseError, ProjectId};

impl ProgressService {
    #[tracing::instrument(name = "progress.init_project", skip_all)]
    pub async fn init_project(
        &self,
        project: &ProjectId,
    ) -> Result<Progress, ProgressUseCaseError> {
        Ok(self.store.init(project).await?)
    }
}
