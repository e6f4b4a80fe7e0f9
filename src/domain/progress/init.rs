//! Use case: start tracking a project (`INITIALIZING`, zero counters).

use super::{Progress, ProgressService, ProgressUseCaseError, ProjectId};

impl ProgressService {
    pub async fn init_project(
        &self,
        project: &ProjectId,
    ) -> Result<Progress, ProgressUseCaseError> {
        Ok(self.store.init(project).await?)
    }
}
