//! Use case: the expiry sweep. Ended trials are cancelled (`trial_expired`,
//! effective until the trial's end); ended paid periods expire
//! (`subscription_ended`). Runs on a timer in every replica and on its
//! internal route: the store claims due rows in batches that no concurrent
//! sweep holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so each
//! subscription moves once and reports it with one event — written to the
//! outbox in the transaction that moves it (`EVENT_DELIVERY=outbox`), or
//! published after the batch commits (`direct`). Expired sessions are
//! forgotten on the way.

use chrono::{DateTime, Utc};

use super::{
    BillingService, Subscription, SubscriptionPatch, SweepReport, cancel::cancelled_data,
    upgrade::changed_data,
};
use crate::{
    domain::{
        billing::SubscriptionStatus,
        events::{CancellationReason, EventData, EventDelivery, TransitionReason},
    },
    ports::{OutboxEvent, StoreError, SweepMove, SweptSubscription},
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

/// The event that reports the sweep's move of `before` to `after`.
fn sweep_event(
    before: &Subscription,
    after: &Subscription,
    now: DateTime<Utc>,
) -> Option<EventData> {
    if after.status == SubscriptionStatus::Cancelled {
        Some(cancelled_data(
            after,
            before.status,
            CancellationReason::trial_expired(),
            after.trial_end.unwrap_or(now),
            None,
        ))
    } else {
        changed_data(
            after,
            before.status,
            TransitionReason::SUBSCRIPTION_ENDED,
            false,
        )
    }
}

impl BillingService {
    /// One whole sweep; returns what it moved.
    ///
    /// # Errors
    ///
    /// The store's error when a batch fails; the batches before it stay
    /// moved and reported.
    pub async fn expire_due(&self) -> Result<SweepReport, StoreError> {
        self.expire_due_until(&|| false).await
    }

    /// A sweep that stops between two batches once `stop()` says so: a
    /// batch's commit and its events are never separated by a stop.
    ///
    /// # Errors
    ///
    /// As [`BillingService::expire_due`].
    #[tracing::instrument(name = "billing.expire_due", skip_all)]
    pub async fn expire_due_until(
        &self,
        stop: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let outbox = self.events.delivery() == EventDelivery::Outbox;
        // With the outbox, the event is sealed inside the store transaction
        // that moves the row (synchronously: the plan code of a stored
        // subscription is guaranteed by the database), so the move and its
        // event commit or roll back together.
        let rule = move |s: &Subscription| {
            let patch = expiry(s, now)?;
            let mut events = Vec::new();
            if outbox {
                let mut after = s.clone();
                patch.apply(&mut after);
                match sweep_event(s, &after, now).map(|data| self.events.seal(data)) {
                    Some(Ok(event)) => events.push(OutboxEvent::subscription(s.id, event)),
                    Some(Err(error)) => {
                        tracing::error!(subscription_id = %s.id, error = %error, "sweep event not written");
                    }
                    None => {}
                }
            }
            Some(SweepMove {
                patch,
                outbox: events,
            })
        };
        loop {
            let batch = self.store.sweep_due(now, SWEEP_BATCH, &rule).await?;
            for swept in &batch {
                if !outbox {
                    self.announce_swept(swept, now).await;
                }
                if swept.subscription.status == SubscriptionStatus::Cancelled {
                    report.trials_cancelled += 1;
                } else {
                    report.subscriptions_ended += 1;
                }
            }
            if batch.len() < SWEEP_BATCH as usize || stop() {
                break;
            }
        }
        self.forget_expired_sessions(now).await;
        if report != SweepReport::default() {
            tracing::info!(
                trials_cancelled = report.trials_cancelled,
                subscriptions_ended = report.subscriptions_ended,
                "expiry sweep"
            );
        }
        Ok(report)
    }

    /// Direct delivery: the event of a move, published once its batch
    /// committed.
    async fn announce_swept(&self, swept: &SweptSubscription, now: DateTime<Utc>) {
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
        } else {
            self.announce_changed(
                s,
                swept.previous,
                TransitionReason::SUBSCRIPTION_ENDED,
                false,
            )
            .await;
        }
    }

    /// A failure here only delays the clean-up to the next sweep.
    async fn forget_expired_sessions(&self, now: DateTime<Utc>) {
        match self.store.delete_expired_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions forgotten"),
            Err(error) => tracing::warn!(error = %error, "expired sessions not forgotten"),
        }
    }
}
