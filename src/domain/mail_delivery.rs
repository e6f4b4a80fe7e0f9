//! E-mail delivery: one e-mail per event, crash-safe (DESIGN §4, §10). A
//! delivery leases the event's de-duplication key with a token of its own,
//! sends (3 retries, 1 s, 2 s, 4 s, on transient failures, each try bounded
//! in time), and only then marks the key `sent`. A failed delivery releases
//! its lease so a later redelivery can send; a copy that finds another
//! owner's lease is told to wait, never that it is a duplicate, so an e-mail
//! cut off by a crash is sent once the dead owner's lease ends.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    domain::retry::RetryPolicy,
    ports::{Claim, DedupError, DedupStore, IdGenerator, MailError, Mailer, Marked, OutgoingEmail},
};

/// How long an event id is remembered as sent.
pub const DEDUP_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default bound on one SMTP conversation (`SMTP_TIMEOUT_SECS`).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Added to the longest delivery to make the lease: covers the claim, the
/// `sent` mark and a slow Redis round trip on either side.
pub const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// `sent` is retried this way: the e-mail is out, and a lease left
/// unmarked would let a later copy send it again once it expires.
const MARK_RETRY: RetryPolicy = RetryPolicy::exponential(3, Duration::from_millis(200));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    /// This event's e-mail was sent already: nothing to do.
    Duplicate,
    /// Another delivery of this event holds the lease (sending now, or
    /// killed mid-send): try again later — at the latest after
    /// `retry_after`, when that lease ends.
    Busy {
        retry_after: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("sending failed after {attempts} attempt(s)")]
    SendFailed {
        attempts: u32,
        #[source]
        source: MailError,
    },
    #[error(transparent)]
    Dedup(#[from] DedupError),
}

pub struct DeliveryService {
    mailer: Arc<dyn Mailer>,
    dedup: Arc<dyn DedupStore>,
    ids: Arc<dyn IdGenerator>,
    retry: RetryPolicy,
    send_timeout: Duration,
    /// Leases held by deliveries under way (owner token → key: the two
    /// copies of one event may be under way at once), so that a shutdown
    /// that abandons them can release them.
    held: Mutex<HashMap<String, String>>,
}

impl DeliveryService {
    /// 3 retries after the first try, 1 s, 2 s and 4 s apart (DESIGN §4).
    pub const RETRY: RetryPolicy = RetryPolicy::exponential(4, Duration::from_secs(1));

    /// `ids` makes each delivery's owner token.
    pub fn new(
        mailer: Arc<dyn Mailer>,
        dedup: Arc<dyn DedupStore>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            mailer,
            dedup,
            ids,
            retry: Self::RETRY,
            send_timeout: SEND_TIMEOUT,
            held: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Bound on one try (the whole SMTP conversation); a try that takes
    /// longer fails as transient.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// The longest one delivery can take: every try at its time bound plus
    /// the backoff between them (4 × 10 s + 7 s by default).
    pub fn longest_delivery(&self) -> Duration {
        let attempts = self.retry.attempts.max(1);
        let backoff: Duration = (2..=attempts)
            .map(|a| self.retry.longest_backoff_before(a))
            .sum();
        self.send_timeout.saturating_mul(attempts) + backoff
    }

    /// The lease a delivery takes: longer than the longest delivery, so a
    /// live owner never loses it (57 s by default).
    pub fn lease(&self) -> Duration {
        self.longest_delivery() + LEASE_MARGIN
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Plain inserts and removes: a poisoned lock still holds a valid map.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `email` unless it was sent before or another delivery holds it.
    #[tracing::instrument(name = "email.deliver", skip_all, fields(messaging.message.id = %email.message_id))]
    pub async fn deliver(&self, email: &OutgoingEmail) -> Result<DeliveryOutcome, DeliveryError> {
        let key = format!("smap:email:sent:{}", email.message_id);
        // New for every try at delivering: a redelivered message must not
        // pass for the (maybe dead) delivery that holds the lease.
        let owner = self.ids.new_uuid().simple().to_string();
        // Held before the claim goes out: a delivery cut off while its claim
        // is in flight may own the lease, and releasing a lease that is not
        // its own deletes nothing.
        self.held().insert(owner.clone(), key.clone());
        let claim = self.dedup.claim(&key, &owner, self.lease()).await;
        if !matches!(claim, Ok(Claim::Acquired | Claim::Mine)) {
            self.held().remove(&owner);
        }
        match claim? {
            Claim::Sent => {
                tracing::info!(event_id = %email.message_id, "e-mail already sent for this event; skipping the copy");
                metrics::counter!("emails_processed_total", "outcome" => "duplicate").increment(1);
                return Ok(DeliveryOutcome::Duplicate);
            }
            Claim::Busy { expires_in } => {
                tracing::debug!(event_id = %email.message_id, lease_left_ms = expires_in.as_millis(), "another delivery of this event holds its lease");
                return Ok(DeliveryOutcome::Busy {
                    retry_after: expires_in,
                });
            }
            Claim::Acquired | Claim::Mine => {}
        }
        let mut attempts = 0;
        let timeout = self.send_timeout;
        let result = self
            .retry
            .run(
                |attempt| {
                    attempts = attempt;
                    async move {
                        let sent = match tokio::time::timeout(timeout, self.mailer.send(email)).await {
                            Ok(sent) => sent,
                            Err(_) => Err(MailError::Transient(anyhow::anyhow!(
                                "no answer from the mail server within {timeout:?}"
                            ))),
                        };
                        sent.inspect_err(|e| {
                            tracing::warn!(event_id = %email.message_id, attempt, error = %e, "e-mail send failed");
                        })
                    }
                },
                MailError::is_transient,
            )
            .await;
        let outcome = match result {
            Ok(()) => {
                self.mark_sent(&key, &owner, &email.message_id).await;
                metrics::counter!("emails_processed_total", "outcome" => "sent").increment(1);
                Ok(DeliveryOutcome::Sent)
            }
            Err(source) => {
                // Free the key: another copy, or the dead letter replayed
                // later, may send it.
                if let Err(e) = self.dedup.release(&key, &owner).await {
                    tracing::error!(event_id = %email.message_id, error = %e, "could not release the e-mail lease; it ends by itself");
                }
                Err(DeliveryError::SendFailed { attempts, source })
            }
        };
        self.held().remove(&owner);
        outcome
    }

    async fn mark_sent(&self, key: &str, owner: &str, event_id: &str) {
        let marked = MARK_RETRY
            .run(|_| self.dedup.mark_sent(key, owner, DEDUP_TTL), |_| true)
            .await;
        match marked {
            Ok(Marked::Recorded) => {}
            Ok(Marked::LeaseLost) => {
                tracing::warn!(
                    event_id,
                    "the e-mail lease ended before the send did; another copy may have been sent"
                );
            }
            Ok(Marked::SentByAnother) => {
                tracing::warn!(event_id, "another delivery sent this e-mail too");
            }
            Err(e) => {
                tracing::error!(event_id, error = %e, "e-mail sent but not marked sent; a copy redelivered after the lease ends would be sent again");
            }
        }
    }

    /// Releases the leases of deliveries that were abandoned (a shutdown
    /// cut them off): their messages are redelivered, and the next delivery
    /// need not wait for the lease to end. Returns how many were released.
    pub async fn release_abandoned(&self) -> usize {
        let abandoned: Vec<(String, String)> = self.held().drain().collect();
        let mut released = 0;
        for (owner, key) in abandoned {
            match self.dedup.release(&key, &owner).await {
                Ok(true) => released += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(key, error = %e, "could not release an abandoned e-mail lease; it ends by itself");
                }
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::adapters::{memory::InMemoryDedup, system::RandomIds};

    fn email(id: &str) -> OutgoingEmail {
        OutgoingEmail {
            message_id: id.into(),
            to: "a@example.com".into(),
            subject: "s".into(),
            html: "h".into(),
            text: None,
            reply_to: None,
            cc: Vec::new(),
        }
    }

    /// Fails its first `failures` sends, hangs forever when `hang`.
    #[derive(Default)]
    struct Scripted {
        failures: u32,
        hang: bool,
        calls: AtomicU32,
    }

    #[async_trait]
    impl Mailer for Scripted {
        async fn send(&self, _: &OutgoingEmail) -> Result<(), MailError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hang {
                std::future::pending::<()>().await;
            }
            if call < self.failures {
                return Err(MailError::Transient(anyhow::anyhow!("down")));
            }
            Ok(())
        }
    }

    fn service(mailer: Arc<Scripted>, dedup: Arc<InMemoryDedup>) -> DeliveryService {
        DeliveryService::new(mailer, dedup, Arc::new(RandomIds))
    }

    #[test]
    fn the_lease_outlasts_the_longest_delivery() {
        let s = service(Arc::default(), Arc::default());
        assert_eq!(s.longest_delivery(), Duration::from_secs(4 * 10 + 7));
        assert_eq!(s.lease(), Duration::from_secs(57));
        let short =
            service(Arc::default(), Arc::default()).with_send_timeout(Duration::from_secs(1));
        assert_eq!(short.lease(), Duration::from_secs(4 + 7 + 10));
    }

    #[tokio::test]
    async fn a_copy_finding_a_live_lease_is_busy_and_a_duplicate_once_sent() {
        let dedup = Arc::new(InMemoryDedup::new());
        let s = service(Arc::default(), dedup.clone());
        let key = "smap:email:sent:evt_1";
        dedup.claim(key, "other", s.lease()).await.unwrap();

        match s.deliver(&email("evt_1")).await.unwrap() {
            DeliveryOutcome::Busy { retry_after } => assert!(retry_after <= s.lease()),
            other => panic!("{other:?}"),
        }
        dedup.mark_sent(key, "other", DEDUP_TTL).await.unwrap();
        assert_eq!(
            s.deliver(&email("evt_1")).await.unwrap(),
            DeliveryOutcome::Duplicate
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_delivery_releases_its_lease_and_a_later_copy_sends() {
        let dedup = Arc::new(InMemoryDedup::new());
        let failing = Arc::new(Scripted {
            failures: 4,
            ..Scripted::default()
        });
        let s = service(failing.clone(), dedup.clone());

        let first = s.deliver(&email("evt_2")).await;
        let second = s.deliver(&email("evt_2")).await.unwrap();

        assert!(matches!(
            first,
            Err(DeliveryError::SendFailed { attempts: 4, .. })
        ));
        assert_eq!(second, DeliveryOutcome::Sent);
        assert_eq!(failing.calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_mail_server_costs_one_timeout_per_try() {
        let hung = Arc::new(Scripted {
            hang: true,
            ..Scripted::default()
        });
        let s = service(hung.clone(), Arc::default()).with_send_timeout(Duration::from_secs(2));
        let started = tokio::time::Instant::now();

        let result = s.deliver(&email("evt_3")).await;

        assert!(matches!(result, Err(DeliveryError::SendFailed { .. })));
        assert_eq!(started.elapsed(), s.longest_delivery());
        assert_eq!(hung.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_delivery_is_released_and_the_next_one_sends_at_once() {
        let dedup = Arc::new(InMemoryDedup::new());
        let hung = Arc::new(Scripted {
            hang: true,
            ..Scripted::default()
        });
        let s = service(hung, dedup.clone());
        let cut_off =
            tokio::time::timeout(Duration::from_secs(1), s.deliver(&email("evt_4"))).await;
        assert!(cut_off.is_err(), "the delivery was abandoned mid-send");

        assert_eq!(s.release_abandoned().await, 1);
        let next = service(Arc::default(), dedup);
        assert_eq!(
            next.deliver(&email("evt_4")).await.unwrap(),
            DeliveryOutcome::Sent
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_copy_does_not_hide_the_lease_of_the_copy_that_holds_it() {
        let hung = Arc::new(Scripted {
            hang: true,
            ..Scripted::default()
        });
        let s = Arc::new(service(hung, Arc::default()));
        let holder = {
            let s = s.clone();
            tokio::spawn(async move { s.deliver(&email("evt_5")).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;

        let copy = s.deliver(&email("evt_5")).await.unwrap();
        holder.abort();
        let _ = holder.await;

        assert!(matches!(copy, DeliveryOutcome::Busy { .. }), "{copy:?}");
        assert_eq!(s.release_abandoned().await, 1, "the holder's lease");
    }
}
