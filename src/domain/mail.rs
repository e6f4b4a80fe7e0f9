//! E-mail delivery: one e-mail per event (a claimed de-duplication key),
//! sends retried 3 times (1 s, 2 s, 4 s) on transient failures, and a
//! released key when every try failed so a later redelivery can send it.

use std::{sync::Arc, time::Duration};

use crate::{
    domain::retry::RetryPolicy,
    ports::{DedupError, DedupStore, MailError, Mailer, OutgoingEmail},
};

/// How long an event id is remembered as sent.
pub const DEDUP_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    /// Another copy of this event was (or is being) sent: nothing to do.
    Duplicate,
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
    retry: RetryPolicy,
}

impl DeliveryService {
    /// 3 retries after the first try, 1 s, 2 s and 4 s apart (DESIGN §4).
    pub const RETRY: RetryPolicy = RetryPolicy {
        attempts: 4,
        initial_backoff: Duration::from_secs(1),
    };

    pub fn new(mailer: Arc<dyn Mailer>, dedup: Arc<dyn DedupStore>) -> Self {
        Self {
            mailer,
            dedup,
            retry: Self::RETRY,
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sends `email` unless its key was claimed before.
    #[tracing::instrument(name = "email.deliver", skip_all, fields(messaging.message.id = %email.message_id))]
    pub async fn deliver(&self, email: &OutgoingEmail) -> Result<DeliveryOutcome, DeliveryError> {
        let key = format!("smap:email:sent:{}", email.message_id);
        if !self.dedup.claim(&key, DEDUP_TTL).await? {
            tracing::info!(event_id = %email.message_id, "e-mail already sent for this event; skipping the copy");
            metrics::counter!("emails_processed_total", "outcome" => "duplicate").increment(1);
            return Ok(DeliveryOutcome::Duplicate);
        }
        let mut attempts = 0;
        let result = self
            .retry
            .run(
                |attempt| {
                    attempts = attempt;
                    async move {
                        self.mailer.send(email).await.inspect_err(|e| {
                            tracing::warn!(event_id = %email.message_id, attempt, error = %e, "e-mail send failed");
                        })
                    }
                },
                MailError::is_transient,
            )
            .await;
        match result {
            Ok(()) => {
                metrics::counter!("emails_processed_total", "outcome" => "sent").increment(1);
                Ok(DeliveryOutcome::Sent)
            }
            Err(source) => {
                // Free the key: the dead letter may be replayed later.
                if let Err(e) = self.dedup.release(&key).await {
                    tracing::error!(event_id = %email.message_id, error = %e, "could not release the de-duplication key");
                }
                Err(DeliveryError::SendFailed { attempts, source })
            }
        }
    }
}
