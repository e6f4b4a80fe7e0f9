//! Use case: the payment of an active subscription failed: `past_due`.

use uuid::Uuid;

use super::{BillingError, BillingService, Subscription};
use crate::domain::{events::TransitionReason, subscription::SubscriptionStatus};

impl BillingService {
    #[tracing::instrument(name = "billing.payment_failed", skip_all)]
    pub async fn payment_failed(&self, id: Uuid) -> Result<Subscription, BillingError> {
        let mut s = self
            .store
            .subscription_by_id(id)
            .await?
            .ok_or(BillingError::SubscriptionNotFound)?;
        if s.status != SubscriptionStatus::Active {
            return Err(BillingError::WrongStatus { status: s.status });
        }
        s.status = SubscriptionStatus::PastDue;
        s.updated_at = self.clock.now();
        self.store.update_subscription(&s).await?;
        self.announce_changed(
            &s,
            SubscriptionStatus::Active,
            TransitionReason::PAYMENT_FAILED,
            false,
        )
        .await;
        Ok(s)
    }
}
