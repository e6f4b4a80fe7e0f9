//! `StoreError`: how an identity store call fails. Every variant but the
//! last two reports a rule of the store that refused the call.

use crate::ports::PublishError;

/// Why an identity store call failed. Whatever the variant, the call wrote
/// nothing (a transaction that fails is rolled back whole), save for two
/// rare store failures: `Unavailable` from a connection lost while its
/// commit was under way (the write's fate is unknown), and `Unexpected`
/// from a row written but not readable back. Each method of
/// [`IdentityStore`](super::IdentityStore) names, under `# Errors`, the
/// variants it returns besides `Unavailable` and `Unexpected`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another account has this e-mail address, ignoring case.
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    /// Another plan has this code.
    #[error("a plan with this code already exists")]
    PlanCodeTaken,
    /// A subscription (live or ended) names the plan, so it cannot be
    /// deleted; or a write names a plan that does not exist (PostgreSQL's
    /// foreign key; the in-memory store checks the same).
    #[error("the plan is still used by subscriptions")]
    PlanInUse,
    /// The user already has a live (trialing, active, past due)
    /// subscription: a user has at most one.
    #[error("the user already has a live subscription")]
    LiveSubscriptionExists,
    /// The row the call names does not exist (any more).
    #[error("not found")]
    NotFound,
    /// A conditional write found the row in another state than the one it
    /// starts from: a concurrent request changed it first. Read again and
    /// decide again; retrying the same write would fail the same way.
    #[error("changed by a concurrent request")]
    Conflict,
    /// The transaction hook failed, with this error; nothing was written.
    #[error("rolled back: {0}")]
    RolledBack(#[source] PublishError),
    /// The store cannot be reached (no connection from the pool, a
    /// connection lost mid-call); another try later may work.
    #[error("identity store unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Any other failure: a statement the database refused for a reason no
    /// variant above names, or a stored row that no longer parses.
    #[error("unexpected identity store failure")]
    Unexpected(#[source] anyhow::Error),
}
