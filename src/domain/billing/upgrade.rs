//! Use case: upgrade a trial to a paid plan; the paid period follows the
//! plan's billing cycle. Conditional on the trial still running: it races
//! a cancellation or the expiry sweep, and exactly one of them wins.

use uuid::Uuid;

use super::{Actor, BillingError, BillingService, Subscription, SubscriptionPatch};
use crate::domain::{
    billing::PlanCode,
    billing::SubscriptionStatus,
    events::{EventData, SubscriptionStatusChangedPayload, TransitionReason},
    timestamp::Timestamp,
};

impl BillingService {
    #[tracing::instrument(name = "billing.upgrade", skip_all)]
    pub async fn upgrade(
        &self,
        id: Uuid,
        actor: Actor,
        plan_code: &PlanCode,
    ) -> Result<Subscription, BillingError> {
        let s = self
            .store
            .subscription_by_id(id)
            .await?
            .ok_or(BillingError::SubscriptionNotFound)?;
        if s.user_id != actor.user_id {
            return Err(BillingError::NotOwner);
        }
        if s.status != SubscriptionStatus::Trialing {
            return Err(BillingError::WrongStatus { status: s.status });
        }
        let plan = self
            .store
            .plan_by_code(plan_code)
            .await?
            .ok_or(BillingError::BadPlan("no such plan"))?;
        if plan.price_minor <= 0 {
            return Err(BillingError::BadPlan("upgrades go to a paid plan"));
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
