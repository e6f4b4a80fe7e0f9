//! `BillingService`: plans and subscriptions. Subscription events are
//! written to the outbox in the transaction of the transition they report
//! (`EVENT_DELIVERY=outbox`), or published after the store committed
//! (`direct`: a publish that still fails after the retry policy is logged at
//! ERROR and counted, and the change stands).

use std::sync::Arc;

use chrono::Duration;
use uuid::Uuid;

use super::{BillingCycle, Plan, Subscription, SubscriptionPatch};
use crate::{
    domain::{
        account::Role,
        billing::PlanCode,
        billing::{SubscriptionStatus, TRIAL_DAYS},
        events::{EventData, EventDelivery, EventId, EventService, SubscriptionCreatedPayload},
        timestamp::Timestamp,
    },
    ports::{Clock, IdGenerator, IdentityStore, OutboxEvent, StoreError},
};

/// Who acts on a subscription: owners act on their own, admins on any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The signed-in user.
    pub user_id: Uuid,
    /// Their role as stored now (not as the token had it).
    pub role: Role,
}

/// Why `transition` wrote nothing; each use case that moves a
/// subscription turns it into its own error.
#[derive(Debug)]
pub(super) enum TransitionError {
    /// The subscription is gone.
    NotFound,
    /// A concurrent request moved it first; it is now in `status`.
    Conflict(SubscriptionStatus),
    /// The plan the patch moves to was deleted meanwhile.
    PlanGone,
    Store(StoreError),
}

impl From<StoreError> for TransitionError {
    fn from(error: StoreError) -> Self {
        TransitionError::Store(error)
    }
}

/// Why the caller's subscription could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MySubscriptionError {
    /// The user never had a subscription (an unverified account).
    #[error("no such subscription")]
    SubscriptionNotFound,
    /// The identity store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an expiry sweep did (all zero when nothing was due).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Ended trials moved to `cancelled` (`trial_expired`).
    pub trials_cancelled: u32,
    /// Ended paid periods (active or past due) moved to `expired`.
    pub subscriptions_ended: u32,
}

/// The billing use cases, one method each (one file each in this folder),
/// over the ports they share. Each method returns its own error enum.
pub struct BillingService {
    pub(super) store: Arc<dyn IdentityStore>,
    pub(super) events: Arc<EventService>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) ids: Arc<dyn IdGenerator>,
}

impl BillingService {
    /// Wires the use cases to their ports.
    pub fn new(
        store: Arc<dyn IdentityStore>,
        events: Arc<EventService>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            store,
            events,
            clock,
            ids,
        }
    }

    /// The free plan, created at first use (a concurrent creation is
    /// taken as is).
    ///
    /// # Errors
    ///
    /// The store's error when it fails; `Unexpected` if the plan a
    /// concurrent request created is gone again when read.
    pub async fn free_plan(&self) -> Result<Plan, StoreError> {
        let code = PlanCode::free();
        if let Some(plan) = self.store.plan_by_code(&code).await? {
            return Ok(plan);
        }
        let now = self.clock.now();
        let plan = Plan {
            id: self.ids.new_uuid(),
            code: code.clone(),
            name: "Free".to_owned(),
            description: Some("14-day trial plan".to_owned()),
            price_minor: 0,
            currency: "USD".to_owned(),
            billing_cycle: BillingCycle::Monthly,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_plan(&plan).await {
            Ok(()) => Ok(plan),
            // Someone else created it first: use theirs.
            Err(StoreError::PlanCodeTaken) => {
                self.store.plan_by_code(&code).await?.ok_or_else(|| {
                    StoreError::Unexpected(anyhow::anyhow!(
                        "the free plan was created concurrently, then deleted"
                    ))
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A new [`TRIAL_DAYS`]-day trial for `user` on the free plan, starting
    /// now; not stored yet (the caller stores it with the account's
    /// activation).
    ///
    /// # Errors
    ///
    /// As [`BillingService::free_plan`].
    pub async fn new_trial(&self, user: Uuid) -> Result<Subscription, StoreError> {
        let plan = self.free_plan().await?;
        let now = self.clock.now();
        Ok(Subscription {
            id: self.ids.new_uuid(),
            user_id: user,
            plan_code: plan.code,
            status: SubscriptionStatus::Trialing,
            trial_start: Some(now),
            trial_end: Some(now + Duration::days(TRIAL_DAYS)),
            period_start: None,
            period_end: None,
            cancelled_at: None,
            cancellation_reason: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// Publishes `subscription.created` for a stored subscription (`direct`
    /// delivery); a failure is logged and counted, not returned.
    pub async fn announce_created(&self, s: &Subscription) {
        self.announce(s, created_data(s)).await;
    }

    /// `subscription.created` for a subscription about to be stored, sealed
    /// for the outbox of the transaction that stores it; `None` (logged and
    /// counted) if it cannot be sealed.
    pub async fn created_for_outbox(&self, s: &Subscription) -> Option<OutboxEvent> {
        self.for_outbox(s, created_data(s)).await
    }

    async fn for_outbox(&self, s: &Subscription, data: EventData) -> Option<OutboxEvent> {
        match self.events.prepare(data).await {
            Ok(event) => Some(OutboxEvent::subscription(s.id, event)),
            Err(error) => {
                tracing::error!(user_id = %s.user_id, subscription_id = %s.id, error = %error, "subscription event not written");
                None
            }
        }
    }

    /// Applies `patch` to `before` (if it is still in `patch.from`) and
    /// reports the transition with the event `data` builds from the row as
    /// the patch leaves it: in the outbox of the same transaction, or
    /// published after the commit (`direct`). Returns the row written and
    /// the event's id.
    pub(super) async fn transition_reporting(
        &self,
        before: &Subscription,
        patch: &SubscriptionPatch,
        data: impl FnOnce(&Subscription) -> Option<EventData>,
    ) -> Result<(Subscription, Option<EventId>), TransitionError> {
        let mut after = before.clone();
        patch.apply(&mut after);
        let data = data(&after);
        match self.events.delivery() {
            EventDelivery::Outbox => {
                let outbox = match data {
                    Some(data) => self.for_outbox(before, data).await,
                    None => None,
                };
                let event_id = outbox.as_ref().map(|o| o.event.event_id());
                let written = self.transition(before.id, patch, outbox.as_slice()).await?;
                Ok((written, event_id))
            }
            EventDelivery::Direct => {
                let written = self.transition(before.id, patch, &[]).await?;
                let event_id = match data {
                    Some(data) => self.announce(&written, data).await,
                    None => None,
                };
                Ok((written, event_id))
            }
        }
    }

    pub(super) async fn announce(&self, s: &Subscription, data: EventData) -> Option<EventId> {
        match self.events.publish(data).await {
            Ok(id) => Some(id),
            Err(error) => {
                tracing::error!(user_id = %s.user_id, subscription_id = %s.id, error = %error, "subscription event not published");
                None
            }
        }
    }

    /// Applies `patch` if the subscription is still in `patch.from`, with
    /// `outbox` in the same transaction; the loser of a race gets `Conflict`
    /// naming the status it found.
    pub(super) async fn transition(
        &self,
        id: Uuid,
        patch: &SubscriptionPatch,
        outbox: &[OutboxEvent],
    ) -> Result<Subscription, TransitionError> {
        match self.store.transition_subscription(id, patch, outbox).await {
            Ok(s) => Ok(s),
            Err(StoreError::Conflict) => {
                let now = self
                    .store
                    .subscription_by_id(id)
                    .await?
                    .ok_or(TransitionError::NotFound)?;
                Err(TransitionError::Conflict(now.status))
            }
            Err(StoreError::NotFound) => Err(TransitionError::NotFound),
            Err(StoreError::PlanInUse) => Err(TransitionError::PlanGone),
            Err(e) => Err(e.into()),
        }
    }

    /// The user's live subscription, else their latest one.
    ///
    /// # Errors
    ///
    /// [`MySubscriptionError::SubscriptionNotFound`] when the user never
    /// had one, [`MySubscriptionError::Store`] when the store fails.
    #[tracing::instrument(name = "billing.my_subscription", skip_all)]
    pub async fn my_subscription(&self, user: Uuid) -> Result<Subscription, MySubscriptionError> {
        if let Some(s) = self.store.live_subscription(user).await? {
            return Ok(s);
        }
        self.store
            .latest_subscription(user)
            .await?
            .ok_or(MySubscriptionError::SubscriptionNotFound)
    }
}

/// `subscription.created` for `s`.
fn created_data(s: &Subscription) -> EventData {
    EventData::SubscriptionCreated(SubscriptionCreatedPayload {
        subscription_id: s.id,
        user_id: s.user_id,
        plan_code: s.plan_code.clone(),
        status: s.status,
        created_at: Timestamp::new(s.created_at),
        trial_start: s.trial_start.map(Timestamp::new),
        trial_end: s.trial_end.map(Timestamp::new),
        subscription_start: s.period_start.map(Timestamp::new),
        subscription_end: s.period_end.map(Timestamp::new),
    })
}
