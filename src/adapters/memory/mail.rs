//! In-process mail adapters: `InMemoryMailer` keeps what it "sends" (and
//! fails on cue, as a server outage would), `InMemoryDedup` claims keys with
//! a time to live.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;

use crate::ports::{DedupError, DedupStore, MailError, Mailer, OutgoingEmail};

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

#[derive(Default)]
pub struct InMemoryDedup {
    keys: Mutex<HashMap<String, Instant>>,
}

impl InMemoryDedup {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DedupStore for InMemoryDedup {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, DedupError> {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get(key) {
            Some(expires) if *expires > now => Ok(false),
            _ => {
                keys.insert(key.to_owned(), now + ttl);
                Ok(true)
            }
        }
    }

    async fn release(&self, key: &str) -> Result<(), DedupError> {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }
}
