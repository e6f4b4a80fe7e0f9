//! `IdentityStore`: users, sessions, plans and subscriptions, with the
//! transactions the use cases need. Every change of state is conditional on
//! the state it starts from (DESIGN §10): a limit takes its slot in one
//! atomic step before the work it limits, and a transition names the status
//! it leaves, so of two racing writers exactly one wins.

mod error;
mod handoff;
mod limits;
mod outbox;
mod profile;
mod sweep;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub use error::StoreError;
pub use handoff::{HANDOFF_CAP, OutboxLink, Take};
pub use limits::{OtpSlot, PasswordLimit, PasswordSlot, ResendEvents, ResendSlot, UserRef};
pub use outbox::{OutboxBacklog, OutboxEntry, OutboxEvent, TxHook};
pub use profile::ProfileChanges;
pub use sweep::{SweepMove, SweepRule, SweptSubscription};

use crate::domain::{
    account::{OtpChallenge, PasswordHash, Role, Session, User},
    billing::{Plan, PlanCode, Subscription, SubscriptionPatch},
    email_address::Email,
};

/// Users, sessions, plans, subscriptions and the outbox. Contract (every
/// adapter; `crate::ports::suites::identity_store` checks it under
/// concurrency): e-mails are unique ignoring case; a user has at most one
/// live (trialing, active, past due) subscription; every slot, transition
/// and multi-row write is one atomic step, however many processes share
/// the store; a call refused by a rule wrote nothing. `outbox` events go in
/// the transaction of the change they report, only if it commits; while the
/// relay takes rows ([`OutboxLink`]) those with no older unpublished row of
/// their aggregate are written claimed and handed to it at the commit. Times
/// are UTC, from the caller (the store reads no clock but for the outbox).
///
/// # Errors
///
/// Every method may fail with [`StoreError::Unavailable`] (the store cannot
/// be reached) or [`StoreError::Unexpected`] (anything else; never in
/// memory): the "store failures" below. A read that finds nothing is
/// `Ok(None)`. A conditional write on a user that is gone is `Conflict` on
/// PostgreSQL and `NotFound` in memory; clearing or releasing a password slot
/// of one is `Ok` on PostgreSQL and `NotFound` in memory (unreachable today).
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Inserts `user`, runs `hook` inside the same transaction, commits when
    /// it succeeds and rolls back (no user remains) when it fails. Whether
    /// readers see the user while the hook runs depends on the adapter.
    ///
    /// # Errors
    ///
    /// `EmailTaken` (the hook did not run); `RolledBack` with its error.
    async fn insert_user_then<'a>(&self, user: &User, hook: TxHook<'a>) -> Result<(), StoreError>;
    /// Inserts `user` and writes `outbox` in one transaction.
    ///
    /// # Errors
    ///
    /// `EmailTaken`.
    async fn insert_user_enqueue(
        &self,
        user: &User,
        outbox: &[OutboxEvent],
    ) -> Result<(), StoreError>;
    /// The account with `email`, ignoring case; `None` when there is none.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    /// The account with `id`; `None` when there is none.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Users newest first (ties by id), skipping `offset`, at most `limit`
    /// (empty past the end), and the count of all users, read apart.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn list_users(&self, offset: u64, limit: u64) -> Result<(Vec<User>, u64), StoreError>;
    /// Counts one password check before it runs. A lock whose time is over
    /// starts a new window (this check is its first); the check that reaches
    /// `limit.max_checks` locks the account until `now + limit.lock_for`.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn take_password_slot(
        &self,
        who: UserRef<'_>,
        now: DateTime<Utc>,
        limit: PasswordLimit,
    ) -> Result<PasswordSlot, StoreError>;
    /// A right password: the count and the lock are cleared — only if the
    /// count is still `count_at_slot` (what the granted slot left): checks
    /// taken meanwhile by others keep their count and their lock.
    ///
    /// # Errors
    ///
    /// The store failures; `NotFound` in memory when the user is gone.
    async fn clear_password_failures(
        &self,
        user: Uuid,
        count_at_slot: u32,
    ) -> Result<(), StoreError>;
    /// Gives a granted slot back when its check could not run (the hasher
    /// shed it): the count goes down by one only if it is still
    /// `count_at_slot`, and a lock that slot set is lifted with it.
    ///
    /// # Errors
    ///
    /// The store failures; `NotFound` in memory when the user is gone.
    async fn release_password_slot(
        &self,
        user: Uuid,
        count_at_slot: u32,
        limit: PasswordLimit,
    ) -> Result<(), StoreError>;
    /// Counts one OTP comparison before it runs: granted only while the
    /// account is unverified and its code is unexpired at `now` with fewer
    /// than `max_attempts` attempts counted.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn take_otp_slot(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<OtpSlot, StoreError>;
    /// Takes the re-send slot: granted only while the account is unverified
    /// and no OTP was sent after `now - cooldown`. Keeps the code (and its
    /// attempts) while it is unexpired with attempts left, else installs
    /// `fresh` (built at `now`); either way `sent_at = now`. The events
    /// `outbox` builds for a granted slot are written with it.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn take_resend_slot(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
        cooldown: Duration,
        max_attempts: u32,
        fresh: &OtpChallenge,
        outbox: ResendEvents<'_>,
    ) -> Result<ResendSlot, StoreError>;
    /// Gives a re-send slot back (its e-mail could not be queued), moving
    /// `sent_at` back by `cooldown`, if it is still the one taken at
    /// `taken_at` (else `Ok`, nothing written).
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn release_resend_slot(
        &self,
        user: Uuid,
        taken_at: DateTime<Utc>,
        cooldown: Duration,
    ) -> Result<(), StoreError>;
    /// Marks the user active, clears its OTP and stores `subscription`, in
    /// one transaction with `outbox`, only if the user is still unverified
    /// with the OTP `code`; returns the user row as written.
    ///
    /// # Errors
    ///
    /// `Conflict` when the user is no longer unverified with `code`;
    /// `LiveSubscriptionExists`; `PlanInUse` when the subscription's plan does
    /// not exist (nothing is written).
    async fn activate_with_subscription(
        &self,
        user: Uuid,
        code: &str,
        subscription: &Subscription,
        now: DateTime<Utc>,
        outbox: &[OutboxEvent],
    ) -> Result<User, StoreError>;
    /// Applies the fields `changes` names, sets `updated_at = now` (even
    /// when it names none) and returns the row as written.
    ///
    /// # Errors
    ///
    /// `NotFound` when there is no such user.
    async fn update_profile(
        &self,
        user: Uuid,
        changes: &ProfileChanges,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError>;
    /// Replaces the password hash only if it is still `current`, clears the
    /// failure count and the lock, ends every session of the user and opens
    /// `session`, in one transaction.
    ///
    /// # Errors
    ///
    /// `Conflict` when the hash is no longer `current`.
    async fn change_password(
        &self,
        user: Uuid,
        current: &PasswordHash,
        new: &PasswordHash,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Sets the role of the account with `email` (ignoring case) and
    /// `updated_at = now`; returns the row as written.
    ///
    /// # Errors
    ///
    /// `NotFound` when there is no such account.
    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError>;
    /// Opens `session` only if its user's password hash is still `checked`:
    /// a login that checked the old password while a password change
    /// committed gets no session.
    ///
    /// # Errors
    ///
    /// `Conflict` when the hash is no longer `checked`.
    async fn insert_session(
        &self,
        session: &Session,
        checked: &PasswordHash,
    ) -> Result<(), StoreError>;
    /// The user of a session that exists and expires after `now`: one
    /// indexed read. `None` for an unknown, ended or expired session.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn session_user(
        &self,
        session: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;
    /// Ends a session; ending an ended or unknown one is `Ok`.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn delete_session(&self, session: Uuid) -> Result<(), StoreError>;
    /// Forgets the sessions expiring at or before `now`; returns how many.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Every plan, cheapest first (ties by code); empty when there is none.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn plans(&self) -> Result<Vec<Plan>, StoreError>;
    /// The plan with `id`; `None` when there is none.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn plan_by_id(&self, id: Uuid) -> Result<Option<Plan>, StoreError>;
    /// The plan with `code` (codes are unique); `None` when there is none.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn plan_by_code(&self, code: &PlanCode) -> Result<Option<Plan>, StoreError>;
    /// Adds `plan`.
    ///
    /// # Errors
    ///
    /// `PlanCodeTaken`.
    async fn insert_plan(&self, plan: &Plan) -> Result<(), StoreError>;
    /// Writes `plan` over the row with its id (same `code`: plans are never
    /// renamed) only if that row's `updated_at` is still `read_at`.
    ///
    /// # Errors
    ///
    /// `Conflict` when changed since `read_at`; `NotFound` when gone.
    async fn update_plan(&self, plan: &Plan, read_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Deletes the plan with `id`.
    ///
    /// # Errors
    ///
    /// `NotFound`; `PlanInUse` when any subscription (live or ended) names it.
    async fn delete_plan(&self, id: Uuid) -> Result<(), StoreError>;
    /// The subscription with `id`; `None` when there is none.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn subscription_by_id(&self, id: Uuid) -> Result<Option<Subscription>, StoreError>;
    /// The user's live (trialing, active, past due) subscription, or `None`.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn live_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError>;
    /// The user's newest subscription by `created_at`, live or not, or `None`.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn latest_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError>;
    /// Applies `patch` only if the subscription is still in `patch.from`;
    /// returns the row as written. `outbox` is written in the same
    /// transaction (and not at all when the patch loses).
    ///
    /// # Errors
    ///
    /// `Conflict` when no longer in `patch.from`; `NotFound`; `PlanInUse`
    /// when `patch.plan_code` names no plan (nothing is written).
    async fn transition_subscription(
        &self,
        id: Uuid,
        patch: &SubscriptionPatch,
        outbox: &[OutboxEvent],
    ) -> Result<Subscription, StoreError>;
    /// Claims up to `limit` subscriptions due at `now` (trialing with
    /// `trial_end <= now`, active or past due with `period_end <= now`),
    /// oldest first, that no concurrent sweep holds; applies `rule` to each
    /// and commits the batch's moves and events in one transaction; returns
    /// the moved ones. A move whose `patch.from` is not the status read is
    /// dropped. Two sweeps at once never move one subscription twice.
    ///
    /// # Errors
    ///
    /// The store failures (and any variant of a constraint a move breaks).
    async fn sweep_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        rule: SweepRule<'_>,
    ) -> Result<Vec<SweptSubscription>, StoreError>;
    /// Claims up to `limit` outbox rows until `now + lease`: unpublished,
    /// with no lease (or retry time, or hand-off claim) running at `now`, each
    /// the oldest unpublished row of its aggregate (one aggregate's events go
    /// out in order, one per batch). By `id`; concurrent relays never claim
    /// one row twice while the lease lasts.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Marks the rows `ids` published at `now` and ends their leases; ids
    /// of no row are ignored, and marking again only moves the time.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn outbox_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// A publish failed: counts the attempt, keeps `error`, and holds the row
    /// (and its aggregate) back until `retry_at`; an unknown id is ignored.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// How many rows wait to be published, and since when.
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError>;
    /// Forgets at most `limit` rows published before `before`, oldest first
    /// (unpublished rows are kept whatever their age); returns how many:
    /// `limit` means call again (each call stays short after an outage).
    ///
    /// # Errors
    ///
    /// The store failures only.
    async fn purge_outbox(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
    /// The link to this process's relay, the same on every call: its
    /// doorbell, and the rows writes claimed for it (decision 70).
    fn outbox_link(&self) -> Arc<OutboxLink>;
}
