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

/// What [`DeliveryService::deliver`] did with an e-mail it did not fail on.
/// The consumer acks the message on `Sent` and `Duplicate`, and requeues it
/// (after `retry_after`) on `Busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The mail server accepted the e-mail on this delivery; the event id is
    /// marked `sent` (or, if marking failed after its retries, logged).
    Sent,
    /// This event's e-mail was sent already: nothing to do.
    Duplicate,
    /// Another delivery of this event holds the lease (sending now, or
    /// killed mid-send): try again later — at the latest after
    /// `retry_after`, when that lease ends.
    Busy {
        /// Time left on the other delivery's lease; never more than
        /// [`DeliveryService::lease`].
        retry_after: Duration,
    },
}

/// Why an e-mail was not delivered. Either way this delivery holds no lease
/// afterwards, so a later copy of the message may send it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The mailer refused the e-mail: permanently, at once, or transiently
    /// on every try of the retry policy. The lease was released.
    #[error("sending failed after {attempts} attempt(s)")]
    SendFailed {
        /// Tries made, the first one included: 1 to the policy's attempts.
        attempts: u32,
        /// The mailer's error from the last try (a timed-out try is a
        /// transient error of its own).
        #[source]
        source: MailError,
    },
    /// The de-duplication store could not be asked for the lease; nothing
    /// was sent.
    #[error(transparent)]
    Dedup(#[from] DedupError),
}

/// Sends the e-mail of an event at most once in normal operation (at least
/// once across crashes): the lease on the event's de-duplication key, the
/// retried send, the `sent` mark, and the release of leases left behind by
/// a shutdown. One instance serves every consumer of the process.
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

    /// The same service with another send retry policy (tests use
    /// [`RetryPolicy::NONE`] or short waits); the lease grows or shrinks
    /// with it.
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
    ///
    /// The key is `smap:email:sent:{message_id}` (the event id). Returns
    /// [`DeliveryOutcome::Duplicate`] when the key is marked sent,
    /// [`DeliveryOutcome::Busy`] when another delivery holds its lease, and
    /// [`DeliveryOutcome::Sent`] once the mailer accepted the e-mail (a
    /// failure to mark it sent afterwards is logged, not returned: the
    /// e-mail is out). Fails with [`DeliveryError::Dedup`] when the lease
    /// cannot be asked for, and [`DeliveryError::SendFailed`] when the tries
    /// run out or a permanent error ends them.
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
mod tests;
