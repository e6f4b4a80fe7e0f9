//! Credentials: password hashing and one-time codes, behind ports so tests
//! can use cheap or predictable ones.

use async_trait::async_trait;

use crate::domain::{
    account::{Password, PasswordHash},
    otp::OtpCode,
};

/// Why a password could not be hashed or checked. Neither case says
/// anything about the password itself.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed taken for the whole allowed wait: the
    /// process is at its CPU and memory budget for hashing. Nothing was
    /// hashed; the caller may retry after `retry_after_secs`.
    #[error("too many password checks at once; retry in {retry_after_secs} s")]
    Busy {
        /// A hint for the `Retry-After` header, in whole seconds; at least 1.
        retry_after_secs: u64,
    },
    /// Hashing itself failed (a malformed stored hash, a panicked worker).
    #[error("password hashing failed")]
    Failed(#[source] anyhow::Error),
}

/// Hashes passwords and checks them against stored hashes. Both are
/// CPU- and memory-heavy on purpose (Argon2id), so an adapter bounds how
/// many run at once and sheds the rest with `Busy` rather than queue
/// without end.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A fresh hash of `password` (PHC string, with a random salt: two
    /// hashes of one password differ).
    ///
    /// # Errors
    ///
    /// `Busy` when too many hashes run at once (retry after the given seconds),
    /// `Failed` when hashing itself failed.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;
    /// Whether `password` matches `hash`: `Ok(true)` for the right one,
    /// `Ok(false)` for a wrong one, in time that does not depend on where
    /// they differ.
    ///
    /// # Errors
    ///
    /// `Busy` when too many checks run at once (retry after the given seconds),
    /// `Failed` when the hash cannot be read or checked; a wrong password is
    /// `Ok(false)`.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError>;
}

/// Fresh one-time codes for e-mail verification.
pub trait OtpSource: Send + Sync {
    /// A six-digit code, uniform over 000000-999999 from a CSPRNG; never
    /// fails.
    fn new_otp(&self) -> OtpCode;
}
