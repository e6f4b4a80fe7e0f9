//! Use case: the payment of an active subscription failed: `past_due`.

use uuid::Uuid;

use super::{BillingError, BillingService, Subscription, SubscriptionPatch};
use crate::domain::{billing::SubscriptionStatus, events::TransitionReason};

impl BillingService {
    #[tracing::instrument(name = "billing.payment_failed", skip_all)]
    pub async fn payment_failed(&self, id: Uuid) -> Result<Subscription, BillingError> {
        let s = self
            .store
            .subscription_by_id(id)
            .await?
            .ok_or(BillingError::SubscriptionNotFound)?;
        if s.status != SubscriptionStatus::Active {
            return Err(BillingError::WrongStatus { status: s.status });
        }
        let patch = SubscriptionPatch::new(
            SubscriptionStatus::Active,
            SubscriptionStatus::PastDue,
            self.clock.now(),
        );
        let (s, _) = self
            .transition_reporting(&s, &patch, |after| {
                super::upgrade::changed_data(
                    after,
                    SubscriptionStatus::Active,
                    TransitionReason::PAYMENT_FAILED,
                    false,
                )
            })
            .await?;
        Ok(s)
    }
}
