//! `PgIdentityStore`: the identity store on PostgreSQL. Uniqueness and the
//! one-live-subscription rule are enforced by the database (indexes), the
//! registration hook runs inside the insert's transaction, and every slot
//! and transition is one conditional statement (or one transaction), so the
//! rules hold across connections and replicas.
//!
//! The trait impl below only forwards: the statements live by topic in
//! `users` (accounts, sessions), `limits` (password, OTP and resend slots),
//! `billing` (plans, subscriptions, the sweep) and `outbox` (the relay's
//! side and the NOTIFY listener); `support` holds what they share.

mod billing;
mod limits;
mod outbox;
mod support;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use diesel::sql_types as sql;
use uuid::Uuid;

use super::PgPool;
use crate::{
    domain::{
        account::{OtpChallenge, PasswordHash, Role, Session, User},
        billing::{Plan, PlanCode, Subscription, SubscriptionPatch},
        email_address::Email,
    },
    ports::{
        IdentityStore, OtpSlot, OutboxBacklog, OutboxEntry, OutboxEvent, PasswordLimit,
        PasswordSlot, ProfileChanges, ResendEvents, ResendSlot, StoreError, SweepRule,
        SweptSubscription, TxHook, UserRef,
    },
};

// `lower(email)`: what the unique index on users compares.
diesel::define_sql_function! { fn lower(x: sql::Text) -> sql::Text; }

const LIVE: [&str; 3] = ["trialing", "active", "past_due"];

/// The `LISTEN/NOTIFY` channel a commit that wrote outbox rows notifies.
pub const OUTBOX_CHANNEL: &str = "outbox";

pub struct PgIdentityStore {
    pool: PgPool,
    link: Arc<crate::ports::OutboxLink>,
    /// The `LISTEN` connection is up: this process's own commits reach the
    /// relay through it too, so they do not wake it a second time.
    listening: Arc<std::sync::atomic::AtomicBool>,
}

impl PgIdentityStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            link: Arc::default(),
            listening: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }
}

#[async_trait]
impl IdentityStore for PgIdentityStore {
    async fn insert_user_then<'a>(&self, user: &User, hook: TxHook<'a>) -> Result<(), StoreError> {
        users::insert_user_then(self, user, hook).await
    }

    async fn insert_user_enqueue(
        &self,
        user: &User,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        users::insert_user_enqueue(self, user, events).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        users::user_by_email(self, email).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        users::user_by_id(self, id).await
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

    async fn list_users(&self, offset: u64, limit: u64) -> Result<(Vec<User>, u64), StoreError> {
        users::list_users(self, offset, limit).await
    }

    async fn activate_with_subscription(
        &self,
        user: Uuid,
        code: &str,
        subscription: &Subscription,
        now: DateTime<Utc>,
        events: &[OutboxEvent],
    ) -> Result<User, StoreError> {
        billing::activate_with_subscription(self, user, code, subscription, now, events).await
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
        events: &[OutboxEvent],
    ) -> Result<Subscription, StoreError> {
        billing::transition_subscription(self, id, patch, events).await
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

    fn outbox_link(&self) -> Arc<crate::ports::OutboxLink> {
        self.link.clone()
    }
}
