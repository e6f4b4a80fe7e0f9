//! `ProgressService`: the progress use cases (one per file beside this one)
//! share a store, the event service and a clock.

use std::sync::Arc;

use super::{Progress, ProjectId};
use crate::{
    domain::{
        events::{EventData, EventService, JobCompletedPayload},
        timestamp::Timestamp,
    },
    ports::{Clock, ProgressError, ProgressStore, PublishError},
};

#[derive(Debug, thiserror::Error)]
pub enum ProgressUseCaseError {
    /// Only the finish line may set `DONE`.
    #[error("`status` may not be DONE: the finish line sets it once every item is done")]
    DoneNotSettable,
    #[error("`total` must be at most {max}")]
    TotalTooLarge { max: u64 },
    #[error(transparent)]
    Store(#[from] ProgressError),
    /// The project crossed its finish line but `job.completed` could not be
    /// published, even after retries.
    #[error("project `{project}` completed but `job.completed` could not be published")]
    CompletionNotPublished {
        project: ProjectId,
        #[source]
        source: PublishError,
    },
}

pub struct ProgressService {
    pub(super) store: Arc<dyn ProgressStore>,
    events: Arc<EventService>,
    clock: Arc<dyn Clock>,
}

impl ProgressService {
    pub fn new(
        store: Arc<dyn ProgressStore>,
        events: Arc<EventService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            events,
            clock,
        }
    }

    /// Publishes `job.completed` for the one caller that crossed the finish line.
    pub(super) async fn announce_completion(
        &self,
        project: &ProjectId,
        progress: &Progress,
    ) -> Result<(), ProgressUseCaseError> {
        let data = EventData::JobCompleted(JobCompletedPayload {
            project_id: project.clone(),
            total: progress.total,
            done: progress.done,
            errors: progress.errors,
            completed_at: Timestamp::new(self.clock.now()),
        });
        match self.events.publish(data).await {
            Ok(event_id) => {
                tracing::info!(project_id = %project, %event_id, "project completed");
                metrics::counter!("projects_completed_total").increment(1);
                Ok(())
            }
            Err(source) => Err(ProgressUseCaseError::CompletionNotPublished {
                project: project.clone(),
                source,
            }),
        }
    }
}
