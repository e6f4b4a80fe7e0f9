//! The `data` of the project events: `job.completed`, which the progress
//! finish line publishes, and the reserved `project.created`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{progress::ProjectId, timestamp::Timestamp};

/// A project crossed its finish line (every item reported, discovery
/// over). Published once per project, under the event id recorded with the
/// completion; the counters are those of that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobCompletedPayload {
    /// The project the Project service issued: 1-64 of `A-Z a-z 0-9 _ -`.
    pub project_id: ProjectId,
    /// Items the collector announced; greater than 0.
    pub total: u64,
    /// Items reported done, failed ones included; at least `total`.
    pub done: u64,
    /// Items among `done` that failed; at most `done`.
    pub errors: u64,
    /// When the finish line was crossed (UTC milliseconds); the same on
    /// every publication of this completion.
    pub completed_at: Timestamp,
}

/// Reserved for the Project service's `project.created`; nothing publishes it yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectCreatedPayload {
    /// The new project's id: 1-64 of `A-Z a-z 0-9 _ -`.
    pub project_id: ProjectId,
    /// The account that owns the project.
    pub user_id: Uuid,
    /// When the project was created (UTC milliseconds).
    pub created_at: Timestamp,
}
