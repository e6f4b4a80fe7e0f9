//! `ProgressService`: the progress use cases (one per file beside this one)
//! share a store, the event service, a clock and an id source; and the one
//! way `job.completed` goes out — from the completion the finish line
//! recorded, under its event id, by whoever holds the claim.

use std::{sync::Arc, time::Duration};

use super::{COMPLETION_LEASE, ClaimedCompletion, CompletionRecord, CompletionStamp};
use crate::{
    domain::{
        events::{EventData, EventId, EventService},
        timestamp::Timestamp,
    },
    ports::{Clock, IdGenerator, ProgressError, ProgressStore},
};

/// Why a progress use case did nothing (or, for a store error, may have
/// done part of it: a retry of the same call is always safe).
#[derive(Debug, thiserror::Error)]
pub enum ProgressUseCaseError {
    /// Only the finish line may set `DONE`.
    #[error("`status` may not be DONE: the finish line sets it once every item is done")]
    DoneNotSettable,
    /// A total over [`super::MAX_TOTAL`], which counters could not keep exact.
    #[error("`total` must be at most {max}")]
    TotalTooLarge {
        /// The largest total accepted, [`super::MAX_TOTAL`].
        max: u64,
    },
    /// The progress store failed (after its own retries).
    #[error(transparent)]
    Store(#[from] ProgressError),
}

/// How a claimed completion fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Confirmed by the broker (and marked published, or left for the relay
    /// to publish again under the same id if the mark failed).
    Published,
    /// Not published; the claim was given back for a later try.
    Failed,
}

/// The progress use cases of DESIGN §5 over a [`ProgressStore`]: `init`,
/// `set_total`, `mark_item_done`, `get_progress`, and the completion relay.
/// The store makes each write atomic; this service adds the input rules,
/// the stamps a completion is recorded with, and the publishing of
/// `job.completed` from the recorded completion.
pub struct ProgressService {
    pub(super) store: Arc<dyn ProgressStore>,
    events: Arc<EventService>,
    pub(super) clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    pub(super) lease: Duration,
}

impl ProgressService {
    /// A service whose claims last [`COMPLETION_LEASE`].
    pub fn new(
        store: Arc<dyn ProgressStore>,
        events: Arc<EventService>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            store,
            events,
            clock,
            ids,
            lease: COMPLETION_LEASE,
        }
    }

    /// Another claim lease (tests of lapsed claims use a short one).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// What a write that may cross the finish line brings along: a fresh
    /// event id and the current time, for the store to record if it does.
    pub(super) fn stamp(&self) -> CompletionStamp {
        CompletionStamp {
            event_id: EventId::from_uuid(self.ids.new_uuid()),
            at: Timestamp::new(self.clock.now()),
            lease: self.lease,
        }
    }

    /// A call token for a report without an item id.
    pub(super) fn call_token(&self) -> uuid::Uuid {
        self.ids.new_uuid()
    }

    /// Publishes the completion a write recorded, if that write holds its
    /// claim. Never fails the write: the completion is recorded, so a
    /// publish that fails is retried by the relay (and by a retry of the
    /// write), under the same event id.
    pub(super) async fn deliver(&self, record: Option<&CompletionRecord>) {
        if let Some(claimed) = record.and_then(|r| r.claimed.as_ref()) {
            self.publish_claimed(claimed).await;
        }
    }

    /// Publishes `job.completed` from a claimed completion, then marks it
    /// published; on failure gives the claim back so the relay tries again
    /// on its next round.
    pub(super) async fn publish_claimed(&self, claimed: &ClaimedCompletion) -> Delivery {
        let completion = &claimed.completion;
        let project = &completion.project;
        let event_id = completion.event_id;
        let data = EventData::JobCompleted(completion.payload());
        let published = match self
            .events
            .prepare_recorded(event_id, completion.completed_at, data)
            .await
        {
            Ok(event) => self.events.publish_sealed(&event).await,
            Err(e) => Err(e),
        };
        match published {
            Ok(_) => {
                tracing::info!(project_id = %project, %event_id, "project completed: job.completed published");
                metrics::counter!("projects_completed_total").increment(1);
                if let Err(error) = self.store.mark_published(completion).await {
                    // Published but not marked: the relay publishes it again
                    // once the claim lapses — a duplicate with the same id,
                    // which consumers drop.
                    tracing::warn!(project_id = %project, %event_id, error = %error, "job.completed published but not marked published; it may be published again with the same event id");
                }
                Delivery::Published
            }
            Err(error) => {
                tracing::warn!(project_id = %project, %event_id, error = %error, "job.completed not published yet; it is recorded and will be retried with the same event id");
                // Due again at once: the relay's next round (or a retry of
                // the report) tries again, not the end of the lease.
                let retry_at = Timestamp::new(self.clock.now());
                if let Err(error) = self.store.release(claimed, retry_at).await {
                    // The claim lapses by itself at the end of the lease.
                    tracing::warn!(project_id = %project, %event_id, error = %error, "claim on job.completed not released; retried when it lapses");
                }
                Delivery::Failed
            }
        }
    }
}
