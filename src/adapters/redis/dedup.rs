//! `RedisDedup`: de-duplication keys on the cache database (DB 0), claimed
//! with `SET key 1 NX EX ttl`, so every consumer process agrees.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface, Pool, SetOptions};

use crate::ports::{DedupError, DedupStore};

pub struct RedisDedup {
    cache: Pool,
}

impl RedisDedup {
    pub fn new(cache: Pool) -> Self {
        Self { cache }
    }
}

#[async_trait]
impl DedupStore for RedisDedup {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, DedupError> {
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let reply: Option<String> = self
            .cache
            .set(
                key,
                "1",
                Some(Expiration::EX(seconds)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(|e| DedupError(e.into()))?;
        Ok(reply.is_some())
    }

    async fn release(&self, key: &str) -> Result<(), DedupError> {
        let _: i64 = self
            .cache
            .del(key)
            .await
            .map_err(|e| DedupError(e.into()))?;
        Ok(())
    }
}
