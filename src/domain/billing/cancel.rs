//! Use case: cancel a subscription — by its owner (`user_requested` or their
//! own words) or by an admin (`admin_action`, naming the admin). The write
//! is conditional on the status read: a concurrent transition wins or loses
//! as a whole (409), and only the winner's event is written (or published).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Actor, BillingService, Subscription, SubscriptionPatch, service::TransitionError};
use crate::{
    domain::{
        account::Role,
        billing::SubscriptionStatus,
        events::{CancellationReason, EventData, EventId, SubscriptionCancelledPayload},
        timestamp::Timestamp,
    },
    ports::StoreError,
};

/// Why a subscription was not cancelled; in every case nothing was
/// written.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No subscription has the id.
    #[error("no such subscription")]
    SubscriptionNotFound,
    /// The subscription is another user's and the caller is no admin.
    #[error("this subscription belongs to another user")]
    NotOwner,
    /// The subscription is no longer live (cancelled or expired).
    #[error("the subscription is {status}, which does not allow this")]
    WrongStatus {
        /// The status found.
        status: SubscriptionStatus,
    },
    /// A concurrent transition (upgrade, expiry, another cancellation)
    /// moved it first.
    #[error(
        "the subscription was changed by a concurrent request (it is now {status}); read it again"
    )]
    Conflict {
        /// The status the winner left.
        status: SubscriptionStatus,
    },
    /// The identity store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TransitionError> for CancelError {
    fn from(error: TransitionError) -> Self {
        match error {
            TransitionError::NotFound => CancelError::SubscriptionNotFound,
            TransitionError::Conflict(status) => CancelError::Conflict { status },
            // Cannot happen: a cancellation names no plan.
            TransitionError::PlanGone => CancelError::Store(StoreError::PlanInUse),
            TransitionError::Store(e) => CancelError::Store(e),
        }
    }
}

impl BillingService {
    /// Cancels a live subscription; the time already granted (trial or
    /// paid period) stays usable until it ends. Reports
    /// `subscription.cancelled` and returns the subscription as written.
    /// An admin cancelling another user's subscription is recorded as
    /// `admin_action`, whatever `reason` says.
    ///
    /// # Errors
    ///
    /// [`CancelError::SubscriptionNotFound`], [`CancelError::NotOwner`],
    /// [`CancelError::WrongStatus`] when not live,
    /// [`CancelError::Conflict`] when a concurrent transition won,
    /// [`CancelError::Store`] when the store fails.
    #[tracing::instrument(name = "billing.cancel", skip_all)]
    pub async fn cancel(
        &self,
        id: Uuid,
        actor: Actor,
        reason: Option<CancellationReason>,
    ) -> Result<Subscription, CancelError> {
        let s = self
            .store
            .subscription_by_id(id)
            .await?
            .ok_or(CancelError::SubscriptionNotFound)?;
        if s.user_id != actor.user_id && actor.role != Role::Admin {
            return Err(CancelError::NotOwner);
        }
        if !s.is_live() {
            return Err(CancelError::WrongStatus { status: s.status });
        }
        let by_admin = actor.role == Role::Admin && actor.user_id != s.user_id;
        let reason = if by_admin {
            CancellationReason::admin_action()
        } else {
            reason.unwrap_or_else(CancellationReason::user_requested)
        };
        let now = self.clock.now();
        let previous = s.status;
        // Paid time and trial time already granted stay usable.
        let effective_until = match previous {
            SubscriptionStatus::Trialing => s.trial_end,
            _ => s.period_end,
        }
        .filter(|end| *end > now)
        .unwrap_or(now);
        let mut patch = SubscriptionPatch::new(previous, SubscriptionStatus::Cancelled, now);
        patch.cancelled_at = Some(now);
        patch.cancellation_reason = Some(reason.to_string());
        let admin = by_admin.then_some(actor.user_id);
        let (s, event_id) = self
            .transition_reporting(&s, &patch, |after| {
                Some(cancelled_data(
                    after,
                    previous,
                    reason.clone(),
                    effective_until,
                    admin,
                ))
            })
            .await?;
        log_cancelled(&s, event_id, &reason, effective_until);
        Ok(s)
    }
}

/// `subscription.cancelled` for `s` as the cancellation leaves it.
pub(super) fn cancelled_data(
    s: &Subscription,
    previous: SubscriptionStatus,
    reason: CancellationReason,
    effective_until: DateTime<Utc>,
    admin_user_id: Option<Uuid>,
) -> EventData {
    EventData::SubscriptionCancelled(SubscriptionCancelledPayload {
        subscription_id: s.id,
        user_id: s.user_id,
        plan_code: s.plan_code.clone(),
        previous_status: previous,
        new_status: SubscriptionStatus::Cancelled,
        cancelled_at: Timestamp::new(s.cancelled_at.unwrap_or(s.updated_at)),
        cancellation_reason: reason,
        effective_until: Timestamp::new(effective_until),
        admin_user_id,
    })
}

pub(super) fn log_cancelled(
    s: &Subscription,
    event_id: Option<EventId>,
    reason: &CancellationReason,
    effective_until: DateTime<Utc>,
) {
    tracing::warn!(
        event_id = event_id.map(|id| id.to_string()).unwrap_or_default(),
        subscription_id = %s.id,
        user_id = %s.user_id,
        cancellation_reason = %reason,
        effective_until = %Timestamp::new(effective_until),
        "subscription cancelled"
    );
}

impl BillingService {
    /// Publishes `subscription.cancelled` for a stored cancellation
    /// (`direct` delivery).
    pub(super) async fn announce_cancelled(
        &self,
        s: &Subscription,
        previous: SubscriptionStatus,
        reason: CancellationReason,
        effective_until: DateTime<Utc>,
        admin_user_id: Option<Uuid>,
    ) {
        let data = cancelled_data(s, previous, reason.clone(), effective_until, admin_user_id);
        let event_id = self.announce(s, data).await;
        log_cancelled(s, event_id, &reason, effective_until);
    }
}
