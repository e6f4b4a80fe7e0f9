//! Use case: the expiry sweep. Ended trials are cancelled (`trial_expired`,
//! effective until the trial's end); ended paid periods expire
//! (`subscription_ended`). Runs on a timer and on its internal route.

use super::{BillingError, BillingService, SweepReport};
use crate::domain::{
    events::CancellationReason, events::TransitionReason, subscription::SubscriptionStatus,
};

impl BillingService {
    #[tracing::instrument(name = "billing.expire_due", skip_all)]
    pub async fn expire_due(&self) -> Result<SweepReport, BillingError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        for mut s in self.store.subscriptions_due(now).await? {
            let previous = s.status;
            match previous {
                SubscriptionStatus::Trialing => {
                    let trial_end = s.trial_end.unwrap_or(now);
                    s.status = SubscriptionStatus::Cancelled;
                    s.cancelled_at = Some(now);
                    s.cancellation_reason = Some(CancellationReason::TRIAL_EXPIRED.to_owned());
                    s.updated_at = now;
                    self.store.update_subscription(&s).await?;
                    self.announce_cancelled(
                        &s,
                        previous,
                        CancellationReason::trial_expired(),
                        trial_end,
                        None,
                    )
                    .await;
                    report.trials_cancelled += 1;
                }
                SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                    s.status = SubscriptionStatus::Expired;
                    s.updated_at = now;
                    self.store.update_subscription(&s).await?;
                    self.announce_changed(
                        &s,
                        previous,
                        TransitionReason::SUBSCRIPTION_ENDED,
                        false,
                    )
                    .await;
                    report.subscriptions_ended += 1;
                }
                _ => {}
            }
        }
        if report != SweepReport::default() {
            tracing::info!(
                trials_cancelled = report.trials_cancelled,
                subscriptions_ended = report.subscriptions_ended,
                "expiry sweep"
            );
        }
        Ok(report)
    }
}
