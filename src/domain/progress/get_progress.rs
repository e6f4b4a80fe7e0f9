//! Use case: read a project's progress; a missing project is `NotFound` and
//! stays missing.

use super::{ProgressService, ProgressUseCaseError, ProgressView, ProjectId};

impl ProgressService {
    /// The stored counters of `project`, or [`ProgressView::NotFound`] when
    /// there are none (the record is not created by asking). Fails only
    /// with [`ProgressUseCaseError::Store`].
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
