//! The sweep of due subscriptions (trials and paid periods that ended) as
//! the identity store runs it: the caller's rule decides each move, the
//! store claims, applies and records them.

use crate::domain::billing::{Subscription, SubscriptionPatch, SubscriptionStatus};

use super::OutboxEvent;

/// What the sweep does with one due subscription: the patch, and the events
/// that report it, written to the outbox in the same transaction.
#[derive(Debug, Clone)]
pub struct SweepMove {
    /// The transition to apply. The store applies it only if `patch.from`
    /// is the subscription's status as the sweep read it; otherwise the
    /// move is dropped and the subscription left as it is.
    pub patch: SubscriptionPatch,
    /// The events reporting the move; written only if the move is applied.
    pub outbox: Vec<OutboxEvent>,
}

/// Decides what the sweep does with one due subscription, as read under
/// the sweep's claim: `Some` move, or `None` to leave it (it stays due and
/// is offered again by the next sweep). It runs while the store holds the
/// claim (in memory, the store's lock): it decides from the subscription
/// alone and does no I/O.
pub type SweepRule<'a> = &'a (dyn Fn(&Subscription) -> Option<SweepMove> + Send + Sync);

/// A subscription the sweep moved.
#[derive(Debug, Clone)]
pub struct SweptSubscription {
    /// The status it left (its rule's `patch.from`).
    pub previous: SubscriptionStatus,
    /// The row as written, after the patch.
    pub subscription: Subscription,
}
