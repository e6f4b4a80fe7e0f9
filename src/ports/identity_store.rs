//! `IdentityStore`: users, plans and subscriptions, with the transactions
//! the use cases need.

use std::{future::Future, pin::Pin};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{Plan, Subscription, User},
        email::Email,
        plan::PlanCode,
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
    /// The transaction hook failed; nothing was written.
    #[error("rolled back: {0}")]
    RolledBack(#[source] PublishError),
    #[error("identity store unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("unexpected identity store failure")]
    Unexpected(#[source] anyhow::Error),
}

/// Contract (every adapter): e-mails are unique (case as stored); a user has
/// at most one live (trialing, active, past due) subscription; a plan in use
/// cannot be deleted; `insert_user_then` commits only if its hook succeeds.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Inserts `user`, runs `hook` inside the same transaction, commits when
    /// it succeeds and rolls back (no user remains) when it fails.
    async fn insert_user_then<'a>(&self, user: &User, hook: TxHook<'a>) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Writes every field of `user` (matched by id).
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    /// Counts one wrong OTP atomically; returns the attempts so far.
    async fn count_otp_failure(&self, user: Uuid) -> Result<u32, StoreError>;
    /// Users by creation time, newest first, and the total count.
    async fn list_users(&self, offset: u64, limit: u64) -> Result<(Vec<User>, u64), StoreError>;
    /// Marks the user active and stores the trial, in one transaction.
    async fn activate_with_subscription(
        &self,
        user: &User,
        subscription: &Subscription,
    ) -> Result<(), StoreError>;

    async fn plans(&self) -> Result<Vec<Plan>, StoreError>;
    async fn plan_by_id(&self, id: Uuid) -> Result<Option<Plan>, StoreError>;
    async fn plan_by_code(&self, code: &PlanCode) -> Result<Option<Plan>, StoreError>;
    async fn insert_plan(&self, plan: &Plan) -> Result<(), StoreError>;
    async fn update_plan(&self, plan: &Plan) -> Result<(), StoreError>;
    async fn delete_plan(&self, id: Uuid) -> Result<(), StoreError>;

    async fn subscription_by_id(&self, id: Uuid) -> Result<Option<Subscription>, StoreError>;
    async fn live_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError>;
    /// The newest subscription of `user`, live or not.
    async fn latest_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError>;
    async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError>;
    /// Trials whose end and paid periods whose end is at or before `now`.
    async fn subscriptions_due(&self, now: DateTime<Utc>) -> Result<Vec<Subscription>, StoreError>;
}
