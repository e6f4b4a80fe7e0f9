//! Credentials: password hashing and one-time codes, behind ports so tests
//! can use cheap or predictable ones.

use async_trait::async_trait;

use crate::domain::{
    account::{Password, PasswordHash},
    otp::OtpCode,
};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError(#[source] pub anyhow::Error);

#[async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;
    /// `Ok(false)` for a wrong password; `Err` only for a malformed hash.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError>;
}

/// Fresh OTPs: uniform over 000000-999999 from a CSPRNG.
pub trait OtpSource: Send + Sync {
    fn new_otp(&self) -> OtpCode;
}
