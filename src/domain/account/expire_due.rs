//! Use case: the expiry sweep. Ended trials are cancelled (`trial_expired`,
//! effective until the trial's end); ended paid periods expire
//! (`subscription_ended`). Runs on a timer in every replica and on its
//! internal route: the store claims due rows in batches that no concurrent
//! sweep holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so each
//! subscription moves once and publishes one event. Expired sessions are
//! forgotten on the way.

use chrono::{DateTime, Utc};

use super::{BillingError, BillingService, Subscription, SubscriptionPatch, SweepReport};
use crate::domain::{
    events::{CancellationReason, TransitionReason},
    subscription::SubscriptionStatus,
};

/// Subscriptions claimed per store transaction.
pub const SWEEP_BATCH: u32 = 100;

/// What the sweep does with one due subscription.
fn expiry(s: &Subscription, now: DateTime<Utc>) -> Option<SubscriptionPatch> {
    match s.status {
        SubscriptionStatus::Trialing => {
            let mut patch = SubscriptionPatch::new(s.status, SubscriptionStatus::Cancelled, now);
            patch.cancelled_at = Some(now);
            patch.cancellation_reason = Some(CancellationReason::TRIAL_EXPIRED.to_owned());
            Some(patch)
        }
        SubscriptionStatus::Active | SubscriptionStatus::PastDue => Some(SubscriptionPatch::new(
            s.status,
            SubscriptionStatus::Expired,
            now,
        )),
        _ => None,
    }
}

impl BillingService {
    /// One whole sweep.
    pub async fn expire_due(&self) -> Result<SweepReport, BillingError> {
        self.expire_due_until(&|| false).await
    }

    /// A sweep that stops between two batches once `stop()` says so: a
    /// batch's commit and its events are never separated by a stop.
    #[tracing::instrument(name = "billing.expire_due", skip_all)]
    pub async fn expire_due_until(
        &self,
        stop: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<SweepReport, BillingError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let rule = move |s: &Subscription| expiry(s, now);
        loop {
            let batch = self.store.sweep_due(now, SWEEP_BATCH, &rule).await?;
            for swept in &batch {
                let s = &swept.subscription;
                if s.status == SubscriptionStatus::Cancelled {
                    let trial_end = s.trial_end.unwrap_or(now);
                    self.announce_cancelled(
                        s,
                        swept.previous,
                        CancellationReason::trial_expired(),
                        trial_end,
                        None,
                    )
                    .await;
                    report.trials_cancelled += 1;
                } else {
                    self.announce_changed(
                        s,
                        swept.previous,
                        TransitionReason::SUBSCRIPTION_ENDED,
                        false,
                    )
                    .await;
                    report.subscriptions_ended += 1;
                }
            }
            if batch.len() < SWEEP_BATCH as usize || stop() {
                break;
            }
        }
        match self.store.delete_expired_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions forgotten"),
            Err(error) => tracing::warn!(error = %error, "expired sessions not forgotten"),
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
