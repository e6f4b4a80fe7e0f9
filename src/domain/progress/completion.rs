//! The retry-safe finish line (DESIGN §10, issue 13): the atomic step that
//! crosses the line also records the completion — its event id, time and
//! counters — so `job.completed` is published from that record, once, with
//! one event id, whatever fails between the step and the publish.
//!
//! Who publishes is decided by a claim with a lease, taken in the same atomic
//! steps: the report that crosses the line holds it first; a retry of that
//! report, or the completion relay, takes it once it has lapsed and the event
//! is still unpublished. Whoever publishes then marks the record published.

use std::time::Duration;

use uuid::Uuid;

use super::{ItemId, ProjectId};
use crate::domain::{
    events::{EventId, JobCompletedPayload},
    timestamp::Timestamp,
};

/// How long the holder of a completion's claim has to publish it before a
/// retry or the relay may take it over. Longer than the slowest publish (3
/// tries of a 5 s confirm timeout), so two publishers of one completion
/// overlap only after a crash or a stall; a publisher that fails gives the
/// claim back at once ([`crate::ports::ProgressStore::release`]).
pub const COMPLETION_LEASE: Duration = Duration::from_secs(30);

/// What a write that may cross the finish line brings along, made by the
/// caller so the store's atomic step stays deterministic: the event id and
/// time to record if this write completes the project, and the caller's
/// clock for the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionStamp {
    /// The id `job.completed` gets if this write completes the project;
    /// fresh per write, unused otherwise.
    pub event_id: EventId,
    /// The completion time if this write completes the project; "now" for
    /// the claim otherwise.
    pub at: Timestamp,
    /// How long a claim taken by this write lasts.
    pub lease: Duration,
}

impl CompletionStamp {
    /// When a claim taken now would lapse: `at + lease`, or the latest
    /// instant `chrono` can hold if that overflows.
    pub fn claim_until(&self) -> Timestamp {
        let at = self.at.as_datetime();
        let until = chrono::Duration::from_std(self.lease)
            .ok()
            .and_then(|lease| at.checked_add_signed(lease))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        Timestamp::new(until)
    }
}

/// What identifies one report of an item done, so that trying it again never
/// counts it twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReportKey {
    /// The worker's item id: every report of it, retried or redelivered, is
    /// one.
    Item(ItemId),
    /// No item id: a token of this one call, made by the caller, so the
    /// store's own retries (and a reconnecting client's replays) of the call
    /// count it once. A new call is a new report.
    Call(Uuid),
}

/// One item reported done (or failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    /// The item failed: counted in `errors` as well as in `done`.
    pub is_error: bool,
    /// What makes a retry of this report count once.
    pub key: ReportKey,
    /// The event id, time and lease to record if this report crosses the
    /// finish line.
    pub stamp: CompletionStamp,
}

/// A completion as recorded when the finish line was crossed: what
/// `job.completed` says, under which id. The counters are those of that
/// moment (items reported later do not change the event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The completed project.
    pub project: ProjectId,
    /// The id every publication of this completion carries.
    pub event_id: EventId,
    /// When the finish line was crossed (UTC milliseconds).
    pub completed_at: Timestamp,
    /// `total` at that moment; greater than 0.
    pub total: u64,
    /// `done` at that moment; at least `total`.
    pub done: u64,
    /// `errors` at that moment; at most `done`.
    pub errors: u64,
}

impl Completion {
    /// The `job.completed` data this completion publishes: the same on
    /// every call.
    pub fn payload(&self) -> JobCompletedPayload {
        JobCompletedPayload {
            project_id: self.project.clone(),
            total: self.total,
            done: self.done,
            errors: self.errors,
            completed_at: self.completed_at,
        }
    }
}

/// A completion whose claim the caller holds until `until`: it publishes
/// `job.completed`, then marks the completion published, or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedCompletion {
    /// What to publish.
    pub completion: Completion,
    /// When the claim lapses and another publisher may take it over.
    pub until: Timestamp,
}

/// The completion a write found or made, told to the report (or total) that
/// crossed the finish line, and to every retry of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionRecord {
    /// The id `job.completed` was (or will be) published under.
    pub event_id: EventId,
    /// When the finish line was crossed (UTC milliseconds).
    pub completed_at: Timestamp,
    /// `job.completed` was confirmed by the broker and marked so.
    pub published: bool,
    /// This write holds the claim: it publishes.
    pub claimed: Option<ClaimedCompletion>,
}

/// What the relay found: the completions it claimed, and how many are still
/// waiting to be published (its own included).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DueCompletions {
    /// The completions claimed for this caller, in the order they fell
    /// due; at most the batch size asked for, empty when nothing is due.
    pub claimed: Vec<ClaimedCompletion>,
    /// Completions recorded but not yet marked published, claimed or not;
    /// at least `claimed.len()`.
    pub pending: u64,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn a_claim_lasts_the_lease_from_the_stamp() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let stamp = CompletionStamp {
            event_id: EventId::from_uuid(Uuid::nil()),
            at: Timestamp::new(at),
            lease: Duration::from_millis(1_500),
        };
        assert_eq!(
            stamp.claim_until(),
            Timestamp::new(at + chrono::Duration::milliseconds(1_500))
        );
    }
}
