//! `DedupStore`: one e-mail per event however many copies of it arrive, and
//! none lost to a crash. A key is first *leased* (`sending`, with the
//! owner's token and a time to live longer than one delivery) and becomes
//! `sent` (kept 7 days) only once the mail server accepted the e-mail. A
//! lease left behind by a killed process expires, so the redelivered message
//! is sent rather than taken for a duplicate (DESIGN §10).

use std::time::Duration;

use async_trait::async_trait;

/// The de-duplication store could not answer (unreachable, or a script it
/// refused). Whether the call took effect is unknown (the answer may be
/// what was lost); a claim taken that way ends with its lease, and the
/// same owner asking again gets `Mine`.
#[derive(Debug, thiserror::Error)]
#[error("de-duplication store unavailable")]
pub struct DedupError(
    /// The adapter's error, for the logs.
    #[source]
    pub anyhow::Error,
);

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key was free (never claimed, released, or its lease expired):
    /// the caller now holds the lease and may send.
    Acquired,
    /// The caller already holds this lease — its own claim replayed, e.g.
    /// by a client resending a command after a reconnect. It may send.
    Mine,
    /// Another owner holds the lease (sending now, or killed mid-send):
    /// not a duplicate yet. Ask again; the lease ends in `expires_in` at the
    /// latest.
    Busy {
        /// Time left on the other owner's lease: positive, at most the
        /// lease it claimed with.
        expires_in: Duration,
    },
    /// The e-mail was sent: this copy is a duplicate.
    Sent,
}

/// The answer to `mark_sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The caller's lease became `sent` (or already was: a replay).
    Recorded,
    /// The caller's lease had expired (and may have been taken by another
    /// owner): `sent` was recorded all the same, since the e-mail went out,
    /// but another copy may have been sent meanwhile.
    LeaseLost,
    /// Another owner had already recorded `sent`: two e-mails went out.
    SentByAnother,
}

/// Contract (`crate::ports::suites::dedup_store`, run on every adapter):
/// - of racing claims by different owners on a free key exactly one gets
///   `Acquired`; the others get `Busy` until the lease ends;
/// - a claim by the owner of the lease gets `Mine`;
/// - once a lease has expired without `mark_sent`, anyone can claim;
/// - `mark_sent` by the owner turns the lease into `sent` for `ttl`; every
///   claim then gets `Sent`;
/// - `release` deletes the key only while it is the caller's own lease.
#[async_trait]
pub trait DedupStore: Send + Sync {
    /// Asks for the right to send the e-mail of `key` as `owner` (a token
    /// unique to this delivery attempt); a free key becomes `owner`'s lease
    /// for `lease` (Redis rounds it up to a millisecond). One atomic step.
    ///
    /// # Errors
    ///
    /// `DedupError` when the store cannot be reached.
    async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim, DedupError>;
    /// Records that `owner` sent the e-mail of `key`: the key answers
    /// `Sent` for `ttl` (whole seconds on Redis, at least one). Records it
    /// even when the lease was lost, since the e-mail went out; only a
    /// `sent` by another owner is kept as it is. One atomic step.
    ///
    /// # Errors
    ///
    /// `DedupError` when the store cannot be reached.
    async fn mark_sent(&self, key: &str, owner: &str, ttl: Duration) -> Result<Marked, DedupError>;
    /// Gives `owner`'s lease on `key` back (the send failed), so the next
    /// copy may claim it at once: `true` when it was deleted, `false` when
    /// the key is not `owner`'s live lease (expired, taken over, or sent),
    /// which is left as it is.
    ///
    /// # Errors
    ///
    /// `DedupError` when the store cannot be reached.
    async fn release(&self, key: &str, owner: &str) -> Result<bool, DedupError>;
}
