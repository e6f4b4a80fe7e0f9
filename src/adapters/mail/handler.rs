//! `EmailHandler`: one queue message in, one outcome out — sent, a
//! duplicate of an e-mail already sent, busy (another delivery of the event
//! holds its lease: handle it again later), or a dead letter with its reason.
//! Shared by the in-memory and RabbitMQ consumers, so both behave alike.

#[cfg(feature = "legacy-fanout")]
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

#[cfg(feature = "legacy-fanout")]
use crate::adapters::legacy::LegacyEmailMessage;
use crate::{
    adapters::mail::templates::EmailTemplates,
    domain::{
        events::{EventData, EventEnvelope},
        mail_delivery::{DeliveryError, DeliveryOutcome, DeliveryService},
        timestamp::Timestamp,
    },
    ports::{Clock, OutgoingEmail},
};

/// What a queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFormat {
    /// The SMAP envelope (`smtp_send_email_v2`).
    Envelope,
    /// The legacy JSON (`smtp_send_email`).
    #[cfg(feature = "legacy-fanout")]
    Legacy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Sent {
        event_id: String,
    },
    Duplicate {
        event_id: String,
    },
    /// Not handled yet: another delivery holds the event's lease. The
    /// consumer keeps the message and handles it again, at the latest after
    /// `retry_after` (when that lease ends).
    Busy {
        event_id: String,
        retry_after: std::time::Duration,
    },
    DeadLetter {
        event_id: Option<String>,
        reason: String,
        attempts: u32,
    },
}

pub struct EmailHandler {
    templates: Arc<EmailTemplates>,
    delivery: Arc<DeliveryService>,
    clock: Arc<dyn Clock>,
}

fn invalid(reason: impl std::fmt::Display) -> String {
    format!("invalid message: {reason}")
}

impl EmailHandler {
    pub fn new(
        templates: Arc<EmailTemplates>,
        delivery: Arc<DeliveryService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            templates,
            delivery,
            clock,
        }
    }

    /// Turns a message into an e-mail and delivers it. `message_id` is the
    /// AMQP property (legacy copies share it with their envelope).
    pub async fn handle(
        &self,
        format: MessageFormat,
        body: &[u8],
        message_id: Option<&str>,
    ) -> Handled {
        let email = match self.prepare(format, body, message_id) {
            Ok(email) => email,
            Err(reason) => {
                tracing::error!(event_id = message_id.unwrap_or("-"), reason = %reason, "e-mail message refused; dead-lettering it");
                metrics::counter!("emails_failed_total", "reason" => "invalid").increment(1);
                return Handled::DeadLetter {
                    event_id: message_id.map(str::to_owned),
                    reason,
                    attempts: 0,
                };
            }
        };
        let event_id = email.message_id.clone();
        match self.delivery.deliver(&email).await {
            Ok(DeliveryOutcome::Sent) => {
                tracing::info!(event_id = %event_id, "e-mail sent");
                Handled::Sent { event_id }
            }
            Ok(DeliveryOutcome::Duplicate) => Handled::Duplicate { event_id },
            Ok(DeliveryOutcome::Busy { retry_after }) => Handled::Busy {
                event_id,
                retry_after,
            },
            Err(DeliveryError::SendFailed { attempts, source }) => {
                tracing::error!(event_id = %event_id, attempts, error = %format!("{source:#}"), "e-mail not sent; dead-lettering it");
                metrics::counter!("emails_failed_total", "reason" => "smtp").increment(1);
                Handled::DeadLetter {
                    event_id: Some(event_id),
                    reason: format!("{:#}", anyhow::Error::from(source)),
                    attempts,
                }
            }
            Err(DeliveryError::Dedup(e)) => {
                tracing::error!(event_id = %event_id, error = %e, "de-duplication store unavailable; dead-lettering rather than risk a second e-mail");
                metrics::counter!("emails_failed_total", "reason" => "dedup").increment(1);
                Handled::DeadLetter {
                    event_id: Some(event_id),
                    reason: e.to_string(),
                    attempts: 0,
                }
            }
        }
    }

    /// Releases the leases of deliveries a shutdown cut off (see
    /// [`DeliveryService::release_abandoned`]).
    pub async fn release_abandoned(&self) -> usize {
        self.delivery.release_abandoned().await
    }

    fn prepare(
        &self,
        format: MessageFormat,
        body: &[u8],
        message_id: Option<&str>,
    ) -> Result<OutgoingEmail, String> {
        match format {
            MessageFormat::Envelope => self.render_envelope(body),
            #[cfg(feature = "legacy-fanout")]
            MessageFormat::Legacy => Self::legacy_email(body, message_id),
        }
        .map(|mut email| {
            if email.message_id.is_empty() {
                email.message_id = message_id.unwrap_or_default().to_owned();
            }
            email
        })
    }

    fn render_envelope(&self, body: &[u8]) -> Result<OutgoingEmail, String> {
        let envelope = EventEnvelope::from_json(body).map_err(invalid)?;
        let now = self.clock.now();
        envelope.data.validate(now).map_err(invalid)?;
        let EventData::EmailVerificationRequested(payload) = &envelope.data else {
            return Err(invalid(format!(
                "no e-mail template for `{}`",
                envelope.routing_key
            )));
        };
        let email = self
            .templates
            .render_verification(payload, Timestamp::new(now))
            .map_err(|e| format!("template failed: {e}"))?;
        Ok(OutgoingEmail {
            message_id: envelope.event_id.to_string(),
            to: payload.recipient.to_string(),
            subject: email.subject,
            html: email.html,
            text: Some(email.text),
            reply_to: None,
            cc: Vec::new(),
        })
    }

    #[cfg(feature = "legacy-fanout")]
    fn legacy_email(body: &[u8], message_id: Option<&str>) -> Result<OutgoingEmail, String> {
        let message: LegacyEmailMessage = serde_json::from_slice(body).map_err(invalid)?;
        crate::domain::email_address::Email::parse(&message.recipient)
            .map_err(|e| invalid(format!("`Recipient`: {e}")))?;
        if message.subject.trim().is_empty() || message.body.trim().is_empty() {
            return Err(invalid("`Subject` and `Body` must not be empty"));
        }
        // Old producers may not set a message id: a hash of the body lets a
        // redelivery of the same message still count as one e-mail.
        let id = match message_id.filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => {
                let mut hasher = DefaultHasher::new();
                body.hash(&mut hasher);
                format!("legacy-{:016x}", hasher.finish())
            }
        };
        Ok(OutgoingEmail {
            message_id: id,
            to: message.recipient,
            subject: message.subject,
            html: message.body,
            text: None,
            reply_to: (!message.reply_to.is_empty()).then_some(message.reply_to),
            cc: message.cc_addresses,
        })
    }
}
