//! `ProgressStore`: project counters with an atomic, exactly-once finish line
//! (DESIGN §5).

use async_trait::async_trait;

use crate::domain::progress::{
    ItemId, ItemUpdate, Progress, ProjectId, ProjectStatus, TotalUpdate,
};

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error("project `{0}` has no progress record")]
    NotFound(ProjectId),
    #[error("project `{0}` is already DONE")]
    AlreadyDone(ProjectId),
    /// The store could not be reached, after the adapter's own retries.
    #[error("progress store unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("unexpected progress store failure")]
    Unexpected(#[source] anyhow::Error),
}

/// Contract (every adapter, tested by the same suite):
/// - every write refreshes the record's time to live (7 days), for the hash
///   and the item-id set alike;
/// - `init` writes `INITIALIZING` and zero counters, replacing any earlier
///   record of the project and forgetting its item ids;
/// - `set_total` sets total and status together and, in the same atomic
///   step, applies the finish line; `NotFound` for an unknown project,
///   `AlreadyDone` once the project is `DONE`;
/// - `mark_item_done` counts the item (and the error) and applies the finish
///   line in ONE atomic step: across all concurrent callers exactly one gets
///   `Completed` per project. An `item_id` seen before changes nothing and
///   reports `duplicate`. `NotFound` for an unknown project;
/// - `get_progress` reads without creating anything: `None` when missing.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ProgressStore: Send + Sync {
    async fn init(&self, project: &ProjectId) -> Result<Progress, ProgressError>;

    async fn set_total(
        &self,
        project: &ProjectId,
        total: u64,
        status: ProjectStatus,
    ) -> Result<TotalUpdate, ProgressError>;

    async fn mark_item_done<'a>(
        &self,
        project: &ProjectId,
        is_error: bool,
        item: Option<&'a ItemId>,
    ) -> Result<ItemUpdate, ProgressError>;

    async fn get_progress(&self, project: &ProjectId) -> Result<Option<Progress>, ProgressError>;
}
