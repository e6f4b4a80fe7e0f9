//! Use case: upgrade a trial to a paid plan; the paid period follows the
//! plan's billing cycle. Conditional on the trial still running: it races
//! a cancellation or the expiry sweep, and exactly one of them wins.

use uuid::Uuid;

use super::{Actor, BillingService, Subscription, SubscriptionPatch, service::TransitionError};
use crate::{
    domain::{
        billing::PlanCode,
        billing::SubscriptionStatus,
        events::{EventData, SubscriptionStatusChangedPayload, TransitionReason},
        timestamp::Timestamp,
    },
    ports::StoreError,
};

/// Why a trial was not upgraded; in every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// No subscription has the id.
    #[error("no such subscription")]
    SubscriptionNotFound,
    /// The subscription is another user's (admins included: only the owner
    /// upgrades).
    #[error("this subscription belongs to another user")]
    NotOwner,
    /// The subscription is not a running trial.
    #[error("the subscription is {status}, which does not allow this")]
    WrongStatus {
        /// The status found.
        status: SubscriptionStatus,
    },
    /// The plan does not exist (or was deleted meanwhile), or is free; the
    /// text says which.
    #[error("`plan_code`: {0}")]
    BadPlan(&'static str),
    /// A concurrent transition (cancellation, expiry) moved the trial first.
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

impl From<TransitionError> for UpgradeError {
    fn from(error: TransitionError) -> Self {
        match error {
            TransitionError::NotFound => UpgradeError::SubscriptionNotFound,
            TransitionError::Conflict(status) => UpgradeError::Conflict { status },
            TransitionError::PlanGone => UpgradeError::BadPlan("no such plan"),
            TransitionError::Store(e) => UpgradeError::Store(e),
        }
    }
}

impl BillingService {
    /// Moves the caller's trial to the paid plan `plan_code`: `active`, for
    /// one billing cycle from now; reports `subscription.status_changed`
    /// and returns the subscription as written.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::SubscriptionNotFound`], [`UpgradeError::NotOwner`],
    /// [`UpgradeError::WrongStatus`] when not trialing,
    /// [`UpgradeError::BadPlan`] for an unknown or free plan,
    /// [`UpgradeError::Conflict`] when a concurrent transition won,
    /// [`UpgradeError::Store`] when the store fails.
    #[tracing::instrument(name = "billing.upgrade", skip_all)]
    pub async fn upgrade(
        &self,
        id: Uuid,
        actor: Actor,
        plan_code: &PlanCode,
    ) -> Result<Subscription, UpgradeError> {
        let s = self
            .store
            .subscription_by_id(id)
            .await?
            .ok_or(UpgradeError::SubscriptionNotFound)?;
        if s.user_id != actor.user_id {
            return Err(UpgradeError::NotOwner);
        }
        if s.status != SubscriptionStatus::Trialing {
            return Err(UpgradeError::WrongStatus { status: s.status });
        }
        let plan = self
            .store
            .plan_by_code(plan_code)
            .await?
            .ok_or(UpgradeError::BadPlan("no such plan"))?;
        if plan.price_minor <= 0 {
            return Err(UpgradeError::BadPlan("upgrades go to a paid plan"));
        }
        let now = self.clock.now();
        let previous = s.status;
        let mut patch = SubscriptionPatch::new(previous, SubscriptionStatus::Active, now);
        patch.plan_code = Some(plan.code.clone());
        patch.period_start = Some(now);
        patch.period_end = Some(plan.billing_cycle.period_end(now));
        let (s, _) = self
            .transition_reporting(&s, &patch, |after| {
                changed_data(after, previous, TransitionReason::UPGRADED, true)
            })
            .await?;
        Ok(s)
    }

    /// Publishes `subscription.status_changed` for a stored transition
    /// (`direct` delivery).
    pub(super) async fn announce_changed(
        &self,
        s: &Subscription,
        previous: SubscriptionStatus,
        reason: &'static str,
        with_period: bool,
    ) {
        if let Some(data) = changed_data(s, previous, reason, with_period) {
            self.announce(s, data).await;
        }
    }
}

/// `subscription.status_changed` for `s` as the transition leaves it.
pub(super) fn changed_data(
    s: &Subscription,
    previous: SubscriptionStatus,
    reason: &'static str,
    with_period: bool,
) -> Option<EventData> {
    let Ok(transition_reason) = TransitionReason::parse(reason) else {
        tracing::error!(reason, "not a transition reason");
        return None;
    };
    Some(EventData::SubscriptionStatusChanged(
        SubscriptionStatusChangedPayload {
            subscription_id: s.id,
            user_id: s.user_id,
            plan_code: s.plan_code.clone(),
            previous_status: previous,
            new_status: s.status,
            transition_reason,
            changed_at: Timestamp::new(s.updated_at),
            subscription_start: s.period_start.filter(|_| with_period).map(Timestamp::new),
            subscription_end: s.period_end.filter(|_| with_period).map(Timestamp::new),
        },
    ))
}
