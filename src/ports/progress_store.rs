//! `ProgressStore`: project counters with an atomic, exactly-once finish line
//! (DESIGN §5).

use async_trait::async_trait;

use std::time::Duration;

use crate::domain::{
    progress::{
        ClaimedCompletion, Completion, CompletionStamp, DueCompletions, ItemReport, ItemUpdate,
        Progress, ProjectId, ProjectStatus, TotalUpdate,
    },
    timestamp::Timestamp,
};

/// Why a progress store call failed; with `NotFound` and `AlreadyDone`
/// nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// The project has no record: never initialised, or its record expired
    /// (7 days without a write).
    #[error("project `{0}` has no progress record")]
    NotFound(ProjectId),
    /// The project is `DONE` and this call would change it.
    #[error("project `{0}` is already DONE")]
    AlreadyDone(ProjectId),
    /// The store could not be reached, after the adapter's own retries.
    #[error("progress store unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Any other failure, e.g. a stored value that no longer parses.
    #[error("unexpected progress store failure")]
    Unexpected(#[source] anyhow::Error),
}

/// Contract (every adapter, tested by the same suite):
/// - every write refreshes the record's time to live (7 days), for the hash
///   and the sets of reports alike;
/// - `init` writes `INITIALIZING` and zero counters, replacing any earlier
///   record of the project and forgetting its reports; a completion not yet
///   published is kept (it is not the project's record but the event's);
/// - `set_total` sets total and status together and, in the same atomic
///   step, applies the finish line; `NotFound` for an unknown project,
///   `AlreadyDone` once the project is `DONE` — except for a retry of the
///   very request (same total and status) that completed it, which gets the
///   same answer again;
/// - `mark_item_done` counts the report (and the error) and applies the
///   finish line in ONE atomic step: across all concurrent callers exactly
///   one report gets `Completed` per project, and gets it again when it is
///   retried. A report seen before (same item id, or the same call token)
///   changes nothing; an item id seen before reports `duplicate`.
///   `NotFound` for an unknown project;
/// - the step that crosses the finish line also records the completion
///   (the stamp's event id and time, the counters of that moment) and gives
///   its caller the claim to publish it until `stamp.claim_until()`. A retry
///   of that report finding the completion unpublished and the claim lapsed
///   (at its own stamp's time) takes the claim; so does
///   `claim_due_completions`, the relay's scan. A claim is ended by
///   `mark_published` (for good) or `release` (due again at a given time);
/// - `get_progress` reads without creating anything: `None` when missing.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ProgressStore: Send + Sync {
    /// Starts (or restarts) the project's record: `INITIALIZING`, every
    /// counter 0; returns that record.
    ///
    /// # Errors
    ///
    /// `Unavailable` when Redis cannot be reached (after the adapter's
    /// retries), `Unexpected` on any other failure.
    async fn init(&self, project: &ProjectId) -> Result<Progress, ProgressError>;

    /// Sets the expected total and the status in one step and applies the
    /// finish line; the answer says whether this call completed the project
    /// and, if so, carries the completion to publish (and its claim).
    ///
    /// # Errors
    ///
    /// `NotFound` when the project has no record, `AlreadyDone` once it is
    /// DONE; `Unavailable` when Redis cannot be reached (after the adapter's
    /// retries), `Unexpected` on any other failure.
    async fn set_total(
        &self,
        project: &ProjectId,
        total: u64,
        status: ProjectStatus,
        stamp: &CompletionStamp,
    ) -> Result<TotalUpdate, ProgressError>;

    /// Counts one item report (an error too when `report.is_error`) unless
    /// it was counted before, and applies the finish line; the answer says
    /// `Completed` to the one report that crossed it (and to its retries),
    /// `duplicate` for an item id seen before.
    ///
    /// # Errors
    ///
    /// `NotFound` when the project has no record; `Unavailable` when Redis
    /// cannot be reached (after the adapter's retries), `Unexpected` on any
    /// other failure.
    async fn mark_item_done(
        &self,
        project: &ProjectId,
        report: &ItemReport,
    ) -> Result<ItemUpdate, ProgressError>;

    /// The project's counters and status as stored, without writing
    /// anything; `None` when it has no record.
    ///
    /// # Errors
    ///
    /// `Unavailable` when Redis cannot be reached (after the adapter's
    /// retries), `Unexpected` on any other failure; no record is `Ok(None)`.
    async fn get_progress(&self, project: &ProjectId) -> Result<Option<Progress>, ProgressError>;

    /// Claims, until `now + lease`, up to `limit` unpublished completions
    /// whose claim has lapsed at `now`; also counts every unpublished one.
    ///
    /// # Errors
    ///
    /// `Unavailable` when Redis cannot be reached (after the adapter's
    /// retries), `Unexpected` on any other failure.
    async fn claim_due_completions(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<DueCompletions, ProgressError>;

    /// `job.completed` of this completion was confirmed: it is never claimed
    /// again, and the project's record says published.
    ///
    /// # Errors
    ///
    /// `Unavailable` when Redis cannot be reached (after the adapter's
    /// retries), `Unexpected` on any other failure.
    async fn mark_published(&self, completion: &Completion) -> Result<(), ProgressError>;

    /// The claim's holder could not publish: the completion is due again at
    /// `retry_at` — unless someone else claimed it meanwhile.
    ///
    /// # Errors
    ///
    /// `Unavailable` when Redis cannot be reached (after the adapter's
    /// retries), `Unexpected` on any other failure.
    async fn release(
        &self,
        claimed: &ClaimedCompletion,
        retry_at: Timestamp,
    ) -> Result<(), ProgressError>;
}
