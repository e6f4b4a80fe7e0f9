//! `DedupStore`: claims a key once, so one event gives one e-mail however
//! many copies of it arrive.

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("de-duplication store unavailable")]
pub struct DedupError(#[source] pub anyhow::Error);

/// Contract: `claim` succeeds for exactly one caller per key until the key
/// expires or is released; `release` frees a key so a retry can claim it.
#[async_trait]
pub trait DedupStore: Send + Sync {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, DedupError>;
    async fn release(&self, key: &str) -> Result<(), DedupError>;
}
