//! In-process mail adapters: `InMemoryMailer` keeps what it "sends" (and
//! fails on cue, as a server outage would), `InMemoryDedup` leases keys as
//! the Redis adapter does.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;

use crate::ports::{Claim, DedupError, DedupStore, MailError, Mailer, Marked, OutgoingEmail};

#[derive(Default)]
pub struct InMemoryMailer {
    sent: Mutex<Vec<OutgoingEmail>>,
    failures_left: AtomicU32,
}

impl InMemoryMailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` sends fail as if the server were down.
    pub fn fail_next(&self, n: u32) {
        self.failures_left.store(n, Ordering::SeqCst);
    }

    pub fn sent(&self) -> Vec<OutgoingEmail> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Mailer for InMemoryMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(MailError::Transient(anyhow::anyhow!(
                "mail server down (in-memory)"
            )));
        }
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(email.clone());
        Ok(())
    }
}

/// What a key holds: a lease or a sent mark, each with its owner and end.
struct Entry {
    owner: String,
    sent: bool,
    expires: Instant,
}

/// The Redis adapter's lease semantics in one process (one lock, so each
/// operation is atomic like its Lua script).
#[derive(Default)]
pub struct InMemoryDedup {
    keys: Mutex<HashMap<String, Entry>>,
}

impl InMemoryDedup {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Every operation leaves the map consistent, so a poisoned lock is usable.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl DedupStore for InMemoryDedup {
    async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim, DedupError> {
        let now = Instant::now();
        let mut keys = self.lock();
        match keys.get(key).filter(|e| e.expires > now) {
            None => {
                keys.insert(
                    key.to_owned(),
                    Entry {
                        owner: owner.to_owned(),
                        sent: false,
                        expires: now + lease,
                    },
                );
                Ok(Claim::Acquired)
            }
            Some(e) if e.sent => Ok(Claim::Sent),
            Some(e) if e.owner == owner => Ok(Claim::Mine),
            Some(e) => Ok(Claim::Busy {
                expires_in: e.expires - now,
            }),
        }
    }

    async fn mark_sent(&self, key: &str, owner: &str, ttl: Duration) -> Result<Marked, DedupError> {
        let now = Instant::now();
        let mut keys = self.lock();
        let marked = match keys.get(key).filter(|e| e.expires > now) {
            Some(e) if e.owner == owner => Marked::Recorded,
            Some(e) if e.sent => return Ok(Marked::SentByAnother),
            _ => Marked::LeaseLost,
        };
        keys.insert(
            key.to_owned(),
            Entry {
                owner: owner.to_owned(),
                sent: true,
                expires: now + ttl,
            },
        );
        Ok(marked)
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, DedupError> {
        let now = Instant::now();
        let mut keys = self.lock();
        let mine = keys
            .get(key)
            .is_some_and(|e| !e.sent && e.owner == owner && e.expires > now);
        if mine {
            keys.remove(key);
        }
        Ok(mine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_dedup_keeps_the_dedup_store_contract() {
        crate::ports::suites::dedup_store::run_all(
            std::sync::Arc::new(InMemoryDedup::new()),
            "mem",
        )
        .await;
    }
}
