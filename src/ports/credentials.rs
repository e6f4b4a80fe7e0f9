//! Credentials: password hashing and one-time codes, behind ports so tests
//! can use cheap or predictable ones.

use async_trait::async_trait;

use crate::domain::{
    account::{Password, PasswordHash},
    otp::OtpCode,
};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed taken for the whole allowed wait: the
    /// process is at its CPU and memory budget for hashing. Nothing was
    /// hashed; the caller may retry after `retry_after_secs`.
    #[error("too many password checks at once; retry in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// Hashing itself failed (a malformed stored hash, a panicked worker).
    #[error("password hashing failed")]
    Failed(#[source] anyhow::Error),
}

#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// # Errors
    ///
    /// `Busy` when too many hashes run at once (retry after the given seconds),
    /// `Failed` when hashing itself failed.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;
    /// `Ok(false)` for a wrong password; `Err` for a malformed hash or when
    /// no hashing slot came free in time (`Busy`).
    ///
    /// # Errors
    ///
    /// `Busy` when too many checks run at once (retry after the given seconds),
    /// `Failed` when the hash cannot be read or checked; a wrong password is
    /// `Ok(false)`.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError>;
}

/// Fresh OTPs: uniform over 000000-999999 from a CSPRNG.
pub trait OtpSource: Send + Sync {
    fn new_otp(&self) -> OtpCode;
}
