//! Use case: the payment of an active subscription failed: `past_due`.

use uuid::Uuid;

use super::{BillingService, Subscription, SubscriptionPatch, service::TransitionError};
use crate::{
    domain::{billing::SubscriptionStatus, events::TransitionReason},
    ports::StoreError,
};

/// Why a failed payment was not recorded; in every case nothing was
/// written.
#[derive(Debug, thiserror::Error)]
pub enum PaymentFailedError {
    /// No subscription has the id.
    #[error("no such subscription")]
    SubscriptionNotFound,
    /// The subscription is not `active` (only a paid period can fail).
    #[error("the subscription is {status}, which does not allow this")]
    WrongStatus {
        /// The status found.
        status: SubscriptionStatus,
    },
    /// A concurrent transition (cancellation, expiry) moved it first.
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

impl From<TransitionError> for PaymentFailedError {
    fn from(error: TransitionError) -> Self {
        match error {
            TransitionError::NotFound => PaymentFailedError::SubscriptionNotFound,
            TransitionError::Conflict(status) => PaymentFailedError::Conflict { status },
            // Cannot happen: this move names no plan.
            TransitionError::PlanGone => PaymentFailedError::Store(StoreError::PlanInUse),
            TransitionError::Store(e) => PaymentFailedError::Store(e),
        }
    }
}

impl BillingService {
    /// Moves an `active` subscription to `past_due`, reports
    /// `subscription.status_changed` and returns it as written.
    ///
    /// # Errors
    ///
    /// [`PaymentFailedError::SubscriptionNotFound`],
    /// [`PaymentFailedError::WrongStatus`] when not active,
    /// [`PaymentFailedError::Conflict`] when a concurrent transition won,
    /// [`PaymentFailedError::Store`] when the store fails.
    #[tracing::instrument(name = "billing.payment_failed", skip_all)]
    pub async fn payment_failed(&self, id: Uuid) -> Result<Subscription, PaymentFailedError> {
        let s = self
            .store
            .subscription_by_id(id)
            .await?
            .ok_or(PaymentFailedError::SubscriptionNotFound)?;
        if s.status != SubscriptionStatus::Active {
            return Err(PaymentFailedError::WrongStatus { status: s.status });
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
