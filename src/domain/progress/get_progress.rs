//! Use case: read a project's progress; a missing project is `NotFound` and
//! stays missing.

use super::{ProgressService, ProgressUseCaseError, ProgressView, ProjectId};

impl ProgressService {
    #[tracing::instrument(name = "progress.get_progress", skip_all)]
    pub async fn get_progress(
        &self,
        project: &ProjectId,
    ) -> Result<ProgressView, ProgressUseCaseError> {
        Ok(match self.store.get_progress(project).await? {
            Some(progress) => ProgressView::Found(progress),
            None => ProgressView::NotFound,
        })
    }
}
