//! The transactional outbox as the identity store sees it (DESIGN §10):
//! the events a change writes in its own transaction, the rows a relay
//! claims and publishes, and the hook a registration runs before its commit.

use std::{collections::BTreeMap, future::Future, pin::Pin};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{domain::events::SealedEvent, ports::PublishError};

/// Work run inside a store transaction, before the commit
/// ([`IdentityStore::insert_user_then`](super::IdentityStore::insert_user_then)):
/// `Ok` lets the transaction commit, an error rolls it back and comes back
/// to the caller as [`StoreError::RolledBack`](super::StoreError::RolledBack).
pub type TxHook<'a> = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'a>>;

/// An event to write to the outbox in the transaction of the change it
/// reports (DESIGN §10): it is written if and only if the change commits.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// The ordering key, `user:<uuid>` or `subscription:<uuid>`: a relay
    /// publishes the events of one aggregate in the order they were
    /// written, and never two of them at once — provided the writes of one
    /// aggregate are serialized (each holds the aggregate's row lock, as
    /// every compare-and-set does); concurrent ones have no order to keep.
    pub aggregate: String,
    /// The event as it goes on the wire, already validated and sealed.
    pub event: SealedEvent,
}

impl OutboxEvent {
    /// An event about the user `id`, ordered with that user's other events
    /// (aggregate `user:<id>`).
    pub fn user(id: Uuid, event: SealedEvent) -> Self {
        Self {
            aggregate: format!("user:{id}"),
            event,
        }
    }

    /// An event about the subscription `id`, ordered with that
    /// subscription's other events (aggregate `subscription:<id>`).
    pub fn subscription(id: Uuid, event: SealedEvent) -> Self {
        Self {
            aggregate: format!("subscription:{id}"),
            event,
        }
    }
}

/// An outbox row a relay claimed: publish it, then mark it published
/// ([`IdentityStore::outbox_published`](super::IdentityStore::outbox_published))
/// or failed ([`IdentityStore::outbox_failed`](super::IdentityStore::outbox_failed))
/// before its lease ends, or another relay may publish it again.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// The row's key, assigned at writing and increasing with it: the
    /// order of writing across all aggregates. Never reused.
    pub id: i64,
    /// The ordering key the row was written with (see [`OutboxEvent::aggregate`]).
    pub aggregate: String,
    /// The sealed event's `event_id` (`evt_` and a UUID), what consumers
    /// de-duplicate on; one row per event.
    pub event_id: String,
    /// The routing key to publish with (`<domain>.<action>`, the sealed
    /// event's own).
    pub routing_key: String,
    /// The sealed envelope's bytes, exactly as written (UTF-8 JSON).
    pub body: String,
    /// The writer's W3C trace context (`traceparent`, `tracestate`; either
    /// may be missing, and both are when the writer had no trace).
    pub trace: BTreeMap<String, String>,
    /// Failed publishes so far; 0 for a row never tried or only ever
    /// published successfully.
    pub attempts: u32,
    /// When the row was written (UTC, the store's clock).
    pub created_at: DateTime<Utc>,
}

/// The unpublished part of the outbox, for the relay's gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Rows not yet published, claimed or not.
    pub pending: u64,
    /// When the oldest unpublished row was written (UTC); `None` exactly
    /// when `pending` is 0.
    pub oldest: Option<DateTime<Utc>>,
}
