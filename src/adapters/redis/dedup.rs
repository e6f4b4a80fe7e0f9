//! `RedisDedup`: e-mail de-duplication leases on the cache database (DB 0),
//! so every consumer process agrees. A key holds `sending:<owner>` (with the
//! lease as its TTL, in milliseconds) or `sent:<owner>` (7 days). Each
//! operation is ONE Lua script (EVALSHA, reloaded on NOSCRIPT): it reads and
//! writes the key atomically and compares the owner token, so a command that
//! the client replays after a reconnect finds its own token and answers as
//! the first time did.

use std::time::Duration;

use async_trait::async_trait;
use fred::{prelude::Pool, types::scripts::Script};

use crate::ports::{Claim, DedupError, DedupStore, Marked};

/// KEYS[1] the key; ARGV[1] the owner; ARGV[2] the lease in milliseconds.
/// Returns {answer, milliseconds left on another owner's lease}. Any value
/// that is not a lease counts as sent: `1` is what versions before the
/// lease wrote for a sent e-mail.
const CLAIM: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'sending:' .. ARGV[1], 'PX', ARGV[2])
  return {'ACQUIRED', 0}
end
if v == 'sending:' .. ARGV[1] then return {'MINE', 0} end
if string.sub(v, 1, 8) == 'sending:' then
  local left = redis.call('PTTL', KEYS[1])
  -- A lease must end: one without a TTL (written by hand) gets one.
  if left < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    left = tonumber(ARGV[2])
  end
  return {'BUSY', left}
end
return {'SENT', 0}
"#;

/// KEYS[1] the key; ARGV[1] the owner; ARGV[2] the `sent` TTL in seconds.
/// The e-mail went out whatever the lease says, so `sent` is recorded
/// unless another owner recorded it first.
const MARK_SENT: &str = r#"
local v = redis.call('GET', KEYS[1])
local sent = 'sent:' .. ARGV[1]
if v == 'sending:' .. ARGV[1] or v == sent then
  redis.call('SET', KEYS[1], sent, 'EX', ARGV[2])
  return 'RECORDED'
end
if v and string.sub(v, 1, 8) ~= 'sending:' then return 'SENT_BY_ANOTHER' end
redis.call('SET', KEYS[1], sent, 'EX', ARGV[2])
return 'LEASE_LOST'
"#;

/// KEYS[1] the key; ARGV[1] the owner. Deletes only the owner's lease.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == 'sending:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

pub struct RedisDedup {
    cache: Pool,
    claim: Script,
    mark_sent: Script,
    release: Script,
}

impl RedisDedup {
    pub fn new(cache: Pool) -> Self {
        Self {
            cache,
            claim: Script::from_lua(CLAIM),
            mark_sent: Script::from_lua(MARK_SENT),
            release: Script::from_lua(RELEASE),
        }
    }
}

fn failed(e: fred::prelude::Error) -> DedupError {
    DedupError(e.into())
}

/// At least 1: Redis refuses `PX 0` and `EX 0`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl DedupStore for RedisDedup {
    async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim, DedupError> {
        let (answer, left): (String, i64) = self
            .claim
            .evalsha_with_reload(
                self.cache.next(),
                vec![key.to_owned()],
                vec![owner.to_owned(), millis(lease).to_string()],
            )
            .await
            .map_err(failed)?;
        Ok(match answer.as_str() {
            "ACQUIRED" => Claim::Acquired,
            "MINE" => Claim::Mine,
            "BUSY" => Claim::Busy {
                expires_in: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
            },
            _ => Claim::Sent,
        })
    }

    async fn mark_sent(&self, key: &str, owner: &str, ttl: Duration) -> Result<Marked, DedupError> {
        let answer: String = self
            .mark_sent
            .evalsha_with_reload(
                self.cache.next(),
                vec![key.to_owned()],
                vec![owner.to_owned(), ttl.as_secs().max(1).to_string()],
            )
            .await
            .map_err(failed)?;
        Ok(match answer.as_str() {
            "RECORDED" => Marked::Recorded,
            "SENT_BY_ANOTHER" => Marked::SentByAnother,
            _ => Marked::LeaseLost,
        })
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, DedupError> {
        let deleted: i64 = self
            .release
            .evalsha_with_reload(
                self.cache.next(),
                vec![key.to_owned()],
                vec![owner.to_owned()],
            )
            .await
            .map_err(failed)?;
        Ok(deleted == 1)
    }
}
