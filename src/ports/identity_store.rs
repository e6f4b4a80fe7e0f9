//! `IdentityStore`: users, sessions, plans and subscriptions, with the
//! transactions the use cases need. Every change of state is conditional on
//! the state it starts from (DESIGN §10): a limit takes its slot in one
//! atomic step before the work it limits, and a transition names the status
//! it leaves, so of two racing writers exactly one wins.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{FullName, OtpChallenge, PasswordHash, Role, Session, User},
        billing::{Plan, PlanCode, Subscription, SubscriptionPatch, SubscriptionStatus},
        email_address::Email,
        events::SealedEvent,
        locale::Locale,
    },
    ports::PublishError,
};

/// Work run inside a store transaction, before the commit; its error rolls
/// the transaction back.
pub type TxHook<'a> = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    #[error("a plan with this code already exists")]
    PlanCodeTaken,
    #[error("the plan is still used by subscriptions")]
    PlanInUse,
    #[error("the user already has a live subscription")]
    LiveSubscriptionExists,
    #[error("not found")]
    NotFound,
    /// A conditional write found the row in another state than the one it
    /// starts from: a concurrent request changed it first.
    #[error("changed by a concurrent request")]
    Conflict,
    /// The transaction hook failed; nothing was written.
    #[error("rolled back: {0}")]
    RolledBack(#[source] PublishError),
    #[error("identity store unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("unexpected identity store failure")]
    Unexpected(#[source] anyhow::Error),
}

/// Which user a per-account limit applies to.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    Email(&'a Email),
    Id(Uuid),
}

/// The password-check limit: at most `max_checks` checks, then no check at
/// all for `lock_for`.
#[derive(Debug, Clone, Copy)]
pub struct PasswordLimit {
    pub max_checks: u32,
    pub lock_for: Duration,
}

/// The answer to a request for a password-check slot.
#[derive(Debug, Clone)]
pub enum PasswordSlot {
    /// No such user: nothing was counted.
    NoUser,
    /// A check may run; `user` is the row after the slot was counted.
    Granted(User),
    /// The account is locked until `until`; no check may run.
    Locked { until: DateTime<Utc> },
}

/// The answer to a request for an OTP-check slot.
#[derive(Debug, Clone)]
pub enum OtpSlot {
    /// The comparison may run; `user.otp` holds the code and the attempts
    /// counted so far, this one included.
    Granted(User),
    /// No slot: the account is verified, has no live code, or its code
    /// used up its attempts. `None` when no such user.
    Refused(Option<User>),
}

/// The answer to a request for an OTP re-send slot.
#[derive(Debug, Clone)]
pub enum ResendSlot {
    /// The challenge to send now (the unexpired code, or the fresh one);
    /// its `sent_at` is the slot's time.
    Granted(OtpChallenge, User),
    /// No slot: verified already, or sent within the cool-down. `None` when
    /// no such user.
    Refused(Option<User>),
}

/// A profile edit: `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub full_name: Option<FullName>,
    pub locale: Option<Locale>,
}

/// A subscription the sweep moved, with the status it left.
#[derive(Debug, Clone)]
pub struct SweptSubscription {
    pub previous: SubscriptionStatus,
    pub subscription: Subscription,
}

/// What the sweep does with one due subscription: the patch, and the events
/// that report it (written to the outbox in the same transaction).
#[derive(Debug, Clone)]
pub struct SweepMove {
    pub patch: SubscriptionPatch,
    pub outbox: Vec<OutboxEvent>,
}

/// Decides what the sweep does with one due subscription (`None`: leave it).
pub type SweepRule<'a> = &'a (dyn Fn(&Subscription) -> Option<SweepMove> + Send + Sync);

/// The events that report a granted re-send slot, from the challenge granted
/// and the user row as written.
pub type ResendEvents<'a> = &'a (dyn Fn(&OtpChallenge, &User) -> Vec<OutboxEvent> + Send + Sync);

/// An event to write to the outbox in the transaction of the change it
/// reports (DESIGN §10). `aggregate` is the ordering key: the relay
/// publishes the events of one aggregate in the order they were written.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub aggregate: String,
    pub event: SealedEvent,
}

impl OutboxEvent {
    pub fn user(id: Uuid, event: SealedEvent) -> Self {
        Self {
            aggregate: format!("user:{id}"),
            event,
        }
    }

    pub fn subscription(id: Uuid, event: SealedEvent) -> Self {
        Self {
            aggregate: format!("subscription:{id}"),
            event,
        }
    }
}

/// An outbox row a relay claimed: publish it, then mark it published.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub aggregate: String,
    pub event_id: String,
    pub routing_key: String,
    /// The sealed envelope's bytes, as written.
    pub body: String,
    /// The writer's W3C trace context (`traceparent`, `tracestate`).
    pub trace: BTreeMap<String, String>,
    /// Failed publishes so far.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// The unpublished part of the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    pub pending: u64,
    /// When the oldest unpublished row was written.
    pub oldest: Option<DateTime<Utc>>,
}

/// Contract (every adapter): e-mails are unique ignoring case; a user has at
/// most one live (trialing, active, past due) subscription; a plan in use
/// cannot be deleted; `insert_user_then` commits only if its hook succeeds;
/// every slot and transition below is one atomic step, whatever the
/// concurrency and however many processes share the store.
///
/// # Errors
///
/// Every method: `Unavailable` when the store cannot be reached,
/// `Unexpected` on any other failure; a read that finds nothing is
/// `Ok(None)`. Besides, with nothing written: `EmailTaken` from the
/// `insert_user_*` methods; `RolledBack` from `insert_user_then` (its hook
/// failed); `Conflict` from the conditional writes when the row moved first
/// (`activate_with_subscription`, `change_password`, `insert_session`,
/// `update_plan`, `transition_subscription`); `NotFound` when the row they
/// name is gone (those, `update_profile`, `set_role`, the password-slot
/// writes, `delete_plan`); `LiveSubscriptionExists` from
/// `activate_with_subscription`; `PlanCodeTaken` from `insert_plan`;
/// `PlanInUse` from `delete_plan` (subscriptions name the plan) and
/// `transition_subscription` (the plan it moves to was deleted).
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Inserts `user`, runs `hook` inside the same transaction, commits when
    /// it succeeds and rolls back (no user remains) when it fails.
    async fn insert_user_then<'a>(&self, user: &User, hook: TxHook<'a>) -> Result<(), StoreError>;
    /// Inserts `user` and writes `outbox` in one transaction.
    async fn insert_user_enqueue(
        &self,
        user: &User,
        outbox: &[OutboxEvent],
    ) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Users by creation time, newest first, and the total count.
    async fn list_users(&self, offset: u64, limit: u64) -> Result<(Vec<User>, u64), StoreError>;

    /// Counts one password check before it runs. A lock whose time is over
    /// starts a new window (this check is its first); the check that reaches
    /// `limit.max_checks` locks the account until `now + limit.lock_for`.
    async fn take_password_slot(
        &self,
        who: UserRef<'_>,
        now: DateTime<Utc>,
        limit: PasswordLimit,
    ) -> Result<PasswordSlot, StoreError>;
    /// A right password: the count and the lock are cleared — only if the
    /// count is still `count_at_slot` (what the granted slot left): checks
    /// taken meanwhile by others keep their count and their lock.
    async fn clear_password_failures(
        &self,
        user: Uuid,
        count_at_slot: u32,
    ) -> Result<(), StoreError>;
    /// Gives a granted slot back when its check could not run (the hasher
    /// shed it): only if the count is still `count_at_slot`; a lock that
    /// slot set is lifted with it.
    async fn release_password_slot(
        &self,
        user: Uuid,
        count_at_slot: u32,
        limit: PasswordLimit,
    ) -> Result<(), StoreError>;
    /// Counts one OTP comparison before it runs: granted only while the
    /// account is unverified and its code is unexpired at `now` with fewer
    /// than `max_attempts` attempts counted.
    async fn take_otp_slot(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<OtpSlot, StoreError>;
    /// Takes the re-send slot: granted only while the account is unverified
    /// and no OTP was sent after `now - cooldown`. Keeps the code while it is
    /// unexpired with attempts left, else installs `fresh`; `sent_at = now`. `outbox` gives the events that
    /// report the challenge granted, written in the same transaction.
    async fn take_resend_slot(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
        cooldown: Duration,
        max_attempts: u32,
        fresh: &OtpChallenge,
        outbox: ResendEvents<'_>,
    ) -> Result<ResendSlot, StoreError>;
    /// Gives a re-send slot back (its e-mail could not be queued), if it is
    /// still the one taken at `taken_at`.
    async fn release_resend_slot(
        &self,
        user: Uuid,
        taken_at: DateTime<Utc>,
        cooldown: Duration,
    ) -> Result<(), StoreError>;
    /// Marks the user active and stores the trial, in one transaction, only
    /// if the user is still unverified with the OTP `code`
    /// (`Conflict` otherwise), and writes `outbox` with them.
    async fn activate_with_subscription(
        &self,
        user: Uuid,
        code: &str,
        subscription: &Subscription,
        now: DateTime<Utc>,
        outbox: &[OutboxEvent],
    ) -> Result<User, StoreError>;
    /// Applies the given profile fields only.
    async fn update_profile(
        &self,
        user: Uuid,
        changes: &ProfileChanges,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError>;
    /// Replaces the password hash only if it is still `current` (`Conflict`
    /// otherwise), clears the failure count, ends every session of the user
    /// and opens `session`, in one transaction.
    async fn change_password(
        &self,
        user: Uuid,
        current: &PasswordHash,
        new: &PasswordHash,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Sets the role of the account with `email`.
    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError>;

    /// Opens a session only if the user's password hash is still `checked`
    /// (`Conflict` otherwise): a login that checked the old password while a
    /// password change committed gets no session.
    async fn insert_session(
        &self,
        session: &Session,
        checked: &PasswordHash,
    ) -> Result<(), StoreError>;
    /// The user of a session that is open and unexpired at `now`: one
    /// indexed read.
    async fn session_user(
        &self,
        session: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;
    /// Ends a session; ending an ended one is not an error.
    async fn delete_session(&self, session: Uuid) -> Result<(), StoreError>;
    /// Forgets sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn plans(&self) -> Result<Vec<Plan>, StoreError>;
    async fn plan_by_id(&self, id: Uuid) -> Result<Option<Plan>, StoreError>;
    async fn plan_by_code(&self, code: &PlanCode) -> Result<Option<Plan>, StoreError>;
    async fn insert_plan(&self, plan: &Plan) -> Result<(), StoreError>;
    /// Writes `plan` only if it is still as read (`updated_at` equal to
    /// `read_at`; `Conflict` otherwise, `NotFound` without the row).
    async fn update_plan(&self, plan: &Plan, read_at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn delete_plan(&self, id: Uuid) -> Result<(), StoreError>;

    async fn subscription_by_id(&self, id: Uuid) -> Result<Option<Subscription>, StoreError>;
    async fn live_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError>;
    /// The newest subscription of `user`, live or not.
    async fn latest_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError>;
    /// Applies `patch` only if the subscription is still in the status the
    /// patch leaves (`Conflict` otherwise, `NotFound` without the row);
    /// returns the row as written. `outbox` is written in the same
    /// transaction (and not at all when the patch loses).
    async fn transition_subscription(
        &self,
        id: Uuid,
        patch: &SubscriptionPatch,
        outbox: &[OutboxEvent],
    ) -> Result<Subscription, StoreError>;
    /// Claims up to `limit` subscriptions due at `now` (trials ended, paid
    /// periods ended) that no concurrent sweep holds, applies `rule` to each
    /// and commits each move with its outbox events; returns those it moved.
    /// Two sweeps at once never move one subscription twice.
    async fn sweep_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        rule: SweepRule<'_>,
    ) -> Result<Vec<SweptSubscription>, StoreError>;

    /// Claims up to `limit` outbox rows for one relay until `now + lease`:
    /// unpublished, not claimed by another relay, and each the oldest
    /// unpublished row of its aggregate (so one aggregate's events go out
    /// in order). Concurrent relays never claim one row twice while the
    /// lease lasts (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Marks rows published at `now`.
    async fn outbox_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// A publish failed: counts the attempt, keeps the error, and leaves the
    /// row to a relay again from `retry_at`.
    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// How many rows wait, and since when.
    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError>;
    /// Forgets rows published before `before`; returns how many.
    async fn purge_outbox(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Notified when rows may have been written (in this process, or in
    /// another one sharing the database); the relay also polls.
    fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify>;
}
