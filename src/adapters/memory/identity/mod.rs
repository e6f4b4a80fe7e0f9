//! `InMemoryIdentityStore`: users, plans and subscriptions in process, with
//! the store contract's rules (unique e-mail ignoring case, one live
//! subscription per user, plans in use kept), a registration
//! "transaction" that removes the user again when its hook fails, and every
//! slot and transition as one step under the store's lock.
//!
//! The trait impl below only forwards: the steps live by topic in `users`
//! (accounts, sessions), `limits` (password, OTP and resend slots),
//! `billing` (plans, subscriptions, the sweep) and `outbox`.

mod billing;
mod limits;
mod outbox;
mod users;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{OtpChallenge, PasswordHash, Role, Session, User},
        billing::{Plan, PlanCode, Subscription, SubscriptionPatch},
        email_address::Email,
    },
    ports::{
        IdentityStore, OtpSlot, OutboxBacklog, OutboxEntry, OutboxEvent, OutboxLink, PasswordLimit,
        PasswordSlot, ProfileChanges, ResendEvents, ResendSlot, StoreError, SweepRule,
        SweptSubscription, TxHook, UserRef,
    },
};

#[derive(Default)]
struct State {
    users: HashMap<Uuid, User>,
    by_email: HashMap<String, Uuid>,
    sessions: HashMap<Uuid, Session>,
    plans: HashMap<Uuid, Plan>,
    subscriptions: HashMap<Uuid, Subscription>,
    /// The outbox, in the order of writing (`id` ascending).
    outbox: Vec<OutboxRow>,
    next_outbox_id: i64,
    /// A test's fault: marks fail until then (and are counted).
    #[cfg(test)]
    marks_fail_until: Option<DateTime<Utc>>,
    #[cfg(test)]
    failed_marks: Vec<DateTime<Utc>>,
    /// A test's fault: marks hang until then (a stalled database).
    #[cfg(test)]
    marks_stall_until: Option<DateTime<Utc>>,
}

struct OutboxRow {
    entry: OutboxEntry,
    locked_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    published_at: Option<DateTime<Utc>>,
}

impl State {
    /// Whether a plan has this code: what PostgreSQL's foreign key from
    /// `subscriptions.plan_code` checks.
    fn has_plan(&self, code: &PlanCode) -> bool {
        self.plans.values().any(|p| &p.code == code)
    }

    fn user_mut(&mut self, who: UserRef<'_>) -> Option<&mut User> {
        let id = match who {
            UserRef::Id(id) => id,
            UserRef::Email(email) => *self.by_email.get(&email_key(email))?,
        };
        self.users.get_mut(&id)
    }
}

#[derive(Default)]
pub struct InMemoryIdentityStore {
    state: Mutex<State>,
    link: Arc<OutboxLink>,
}

fn email_key(email: &Email) -> String {
    email.as_str().to_lowercase()
}

impl InMemoryIdentityStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_if(&self, events: usize) {
        if events > 0 {
            self.link.wakeup().notify_one();
        }
    }
}

#[async_trait]
impl IdentityStore for InMemoryIdentityStore {
    async fn insert_user_then<'a>(&self, user: &User, hook: TxHook<'a>) -> Result<(), StoreError> {
        users::insert_user_then(self, user, hook).await
    }

    async fn insert_user_enqueue(
        &self,
        user: &User,
        outbox: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        users::insert_user_enqueue(self, user, outbox).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        users::user_by_email(self, email).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        users::user_by_id(self, id).await
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<(Vec<User>, u64), StoreError> {
        users::list_users(self, offset, limit).await
    }

    async fn take_password_slot(
        &self,
        who: UserRef<'_>,
        now: DateTime<Utc>,
        limit: PasswordLimit,
    ) -> Result<PasswordSlot, StoreError> {
        limits::take_password_slot(self, who, now, limit).await
    }

    async fn clear_password_failures(
        &self,
        user: Uuid,
        count_at_slot: u32,
    ) -> Result<(), StoreError> {
        limits::clear_password_failures(self, user, count_at_slot).await
    }

    async fn release_password_slot(
        &self,
        user: Uuid,
        count_at_slot: u32,
        limit: PasswordLimit,
    ) -> Result<(), StoreError> {
        limits::release_password_slot(self, user, count_at_slot, limit).await
    }

    async fn take_otp_slot(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<OtpSlot, StoreError> {
        limits::take_otp_slot(self, email, now, max_attempts).await
    }

    async fn take_resend_slot(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
        cooldown: Duration,
        max_attempts: u32,
        fresh: &OtpChallenge,
        outbox: ResendEvents<'_>,
    ) -> Result<ResendSlot, StoreError> {
        limits::take_resend_slot(self, user, now, cooldown, max_attempts, fresh, outbox).await
    }

    async fn release_resend_slot(
        &self,
        user: Uuid,
        taken_at: DateTime<Utc>,
        cooldown: Duration,
    ) -> Result<(), StoreError> {
        limits::release_resend_slot(self, user, taken_at, cooldown).await
    }

    async fn activate_with_subscription(
        &self,
        user: Uuid,
        code: &str,
        subscription: &Subscription,
        now: DateTime<Utc>,
        outbox: &[OutboxEvent],
    ) -> Result<User, StoreError> {
        billing::activate_with_subscription(self, user, code, subscription, now, outbox).await
    }

    async fn update_profile(
        &self,
        user: Uuid,
        changes: &ProfileChanges,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        users::update_profile(self, user, changes, now).await
    }

    async fn change_password(
        &self,
        user: Uuid,
        current: &PasswordHash,
        new: &PasswordHash,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        users::change_password(self, user, current, new, session, now).await
    }

    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        users::set_role(self, email, role, now).await
    }

    async fn insert_session(
        &self,
        session: &Session,
        checked: &PasswordHash,
    ) -> Result<(), StoreError> {
        users::insert_session(self, session, checked).await
    }

    async fn session_user(
        &self,
        session: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        users::session_user(self, session, now).await
    }

    async fn delete_session(&self, session: Uuid) -> Result<(), StoreError> {
        users::delete_session(self, session).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        users::delete_expired_sessions(self, now).await
    }

    async fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        billing::plans(self).await
    }

    async fn plan_by_id(&self, id: Uuid) -> Result<Option<Plan>, StoreError> {
        billing::plan_by_id(self, id).await
    }

    async fn plan_by_code(&self, code: &PlanCode) -> Result<Option<Plan>, StoreError> {
        billing::plan_by_code(self, code).await
    }

    async fn insert_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        billing::insert_plan(self, plan).await
    }

    async fn update_plan(&self, plan: &Plan, read_at: DateTime<Utc>) -> Result<(), StoreError> {
        billing::update_plan(self, plan, read_at).await
    }

    async fn delete_plan(&self, id: Uuid) -> Result<(), StoreError> {
        billing::delete_plan(self, id).await
    }

    async fn subscription_by_id(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
        billing::subscription_by_id(self, id).await
    }

    async fn live_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError> {
        billing::live_subscription(self, user).await
    }

    async fn latest_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError> {
        billing::latest_subscription(self, user).await
    }

    async fn transition_subscription(
        &self,
        id: Uuid,
        patch: &SubscriptionPatch,
        outbox: &[OutboxEvent],
    ) -> Result<Subscription, StoreError> {
        billing::transition_subscription(self, id, patch, outbox).await
    }

    async fn sweep_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        rule: SweepRule<'_>,
    ) -> Result<Vec<SweptSubscription>, StoreError> {
        billing::sweep_due(self, now, limit, rule).await
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        outbox::claim_outbox(self, now, limit, lease).await
    }

    async fn outbox_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        outbox::outbox_published(self, ids, now).await
    }

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        outbox::outbox_failed(self, id, error, retry_at).await
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        outbox::outbox_backlog(self).await
    }

    async fn purge_outbox(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        outbox::purge_outbox(self, before, limit).await
    }

    fn outbox_link(&self) -> Arc<OutboxLink> {
        self.link.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::InMemoryIdentityStore;
    use crate::ports::suites;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_identity_contract() {
        suites::identity_store::run_all(Arc::new(InMemoryIdentityStore::new()), "mem").await;
    }
}
