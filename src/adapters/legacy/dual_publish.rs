//! `DualPublisher`: the migration composite. Every event goes to the primary
//! publisher (`smap.events`); while dual-publishing is on, every e-mail event
//! also goes, at the same time, to the legacy fanout exchange in the old
//! format with the same message id, so a consumer can tell the two copies
//! are one e-mail.

use std::sync::Arc;

use async_trait::async_trait;

use super::LegacyEmailMessage;
use crate::{
    adapters::{bus::topology::LEGACY_EXCHANGE, mail::templates::EmailTemplates},
    domain::events::{EventData, EventId, SealedEvent},
    ports::{EventPublisher, PublishError},
};

/// Where legacy copies go: the fanout exchange `smtp_send_email_exc`.
#[async_trait]
pub trait LegacySink: Send + Sync {
    /// Publishes `body` (a legacy message) with the properties of `event`
    /// (its `message_id` in particular); waits for the broker's confirm.
    async fn publish_legacy(&self, event: &SealedEvent, body: &[u8]) -> Result<(), PublishError>;
}

pub struct DualPublisher {
    primary: Arc<dyn EventPublisher>,
    legacy: Arc<dyn LegacySink>,
    enabled: bool,
    templates: Arc<EmailTemplates>,
}

impl DualPublisher {
    pub fn new(
        primary: Arc<dyn EventPublisher>,
        legacy: Arc<dyn LegacySink>,
        enabled: bool,
        templates: Arc<EmailTemplates>,
    ) -> Self {
        Self {
            primary,
            legacy,
            enabled,
            templates,
        }
    }

    /// The legacy body for `event`, when it is an e-mail event and
    /// dual-publishing is on.
    fn legacy_copy(&self, event: &SealedEvent) -> Result<Option<Vec<u8>>, PublishError> {
        if !self.enabled {
            return Ok(None);
        }
        let envelope = event.envelope();
        match &envelope.data {
            EventData::EmailVerificationRequested(payload) => {
                let message = LegacyEmailMessage::for_verification(
                    payload,
                    envelope.timestamp,
                    &self.templates,
                )
                .map_err(|e| PublishError::Unexpected(e.into()))?;
                let body =
                    serde_json::to_vec(&message).map_err(|e| PublishError::Unexpected(e.into()))?;
                Ok(Some(body))
            }
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl EventPublisher for DualPublisher {
    /// Both copies are published concurrently and both must be confirmed:
    /// until the migration ends, the legacy consumer may be the one that
    /// sends the e-mail, so a lost legacy copy is a lost e-mail. A retry
    /// republishes both with the same id; consumers de-duplicate by it.
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        let Some(legacy_body) = self.legacy_copy(event)? else {
            return self.primary.publish(event).await;
        };
        tracing::warn!(
            event_id = %event.event_id(),
            routing_key = %event.routing_key(),
            exchange = LEGACY_EXCHANGE,
            "DEPRECATED: also publishing to the legacy fanout exchange; set \
             ENABLE_DUAL_PUBLISH=false once every consumer reads smap.events"
        );
        let (primary, legacy) = tokio::join!(
            self.primary.publish(event),
            self.legacy.publish_legacy(event, &legacy_body)
        );
        legacy?;
        primary
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::{
        adapters::{
            bus::topology::{EMAIL_QUEUE, LEGACY_QUEUE},
            memory::{InMemoryBroker, InMemoryEventBus, InMemoryLegacySink},
        },
        domain::{
            email_address::Email,
            events::{EmailVerificationPayload, EventEnvelope, JobCompletedPayload},
            locale::Locale,
            otp::OtpCode,
            progress::ProjectId,
            timestamp::Timestamp,
        },
    };

    fn sealed(data: EventData) -> SealedEvent {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        EventEnvelope::new(EventId::from_uuid(Uuid::new_v4()), Timestamp::new(at), data)
            .seal()
            .unwrap()
    }

    fn verification() -> SealedEvent {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        sealed(EventData::EmailVerificationRequested(
            EmailVerificationPayload {
                user_id: Uuid::new_v4(),
                recipient: Email::parse("ann@example.com").unwrap(),
                otp_code: OtpCode::parse("654321").unwrap(),
                locale: Locale::Vi,
                expires_at: Timestamp::new(at + Duration::minutes(10)),
            },
        ))
    }

    fn dual(enabled: bool) -> (Arc<InMemoryBroker>, DualPublisher) {
        let broker = Arc::new(InMemoryBroker::with_smap_topology());
        let publisher = DualPublisher::new(
            Arc::new(InMemoryEventBus::new(broker.clone())),
            Arc::new(InMemoryLegacySink::new(broker.clone())),
            enabled,
            Arc::new(EmailTemplates::new().unwrap()),
        );
        (broker, publisher)
    }

    #[tokio::test]
    async fn with_dual_publishing_on_an_email_event_reaches_both_exchanges_as_one_message_id() {
        let (broker, publisher) = dual(true);
        let event = verification();

        publisher.publish(&event).await.unwrap();

        let new = broker.try_take(EMAIL_QUEUE).unwrap().expect("v2 copy");
        let old = broker.try_take(LEGACY_QUEUE).unwrap().expect("legacy copy");
        assert_eq!(new.properties.message_id, event.event_id().to_string());
        assert_eq!(old.properties.message_id, new.properties.message_id);
        let legacy: LegacyEmailMessage = serde_json::from_slice(&old.body).unwrap();
        assert_eq!(legacy.recipient, "ann@example.com");
        assert_eq!(legacy.subject, "Mã xác thực SMAP của bạn");
        assert!(legacy.body.contains("654321"));
        assert_eq!(&*new.body, event.body());
    }

    #[tokio::test]
    async fn with_dual_publishing_off_nothing_reaches_the_legacy_exchange() {
        let (broker, publisher) = dual(false);

        publisher.publish(&verification()).await.unwrap();

        assert_eq!(broker.message_count(EMAIL_QUEUE), Some(1));
        assert_eq!(broker.message_count(LEGACY_QUEUE), Some(0));
    }

    #[tokio::test]
    async fn non_email_events_never_get_a_legacy_copy() {
        let (broker, publisher) = dual(true);
        let at = Timestamp::new(Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap());
        let job = sealed(EventData::JobCompleted(JobCompletedPayload {
            project_id: ProjectId::parse("p").unwrap(),
            total: 1,
            done: 1,
            errors: 0,
            completed_at: at,
        }));

        publisher.publish(&job).await.unwrap();

        assert_eq!(broker.message_count(LEGACY_QUEUE), Some(0));
    }

    struct FailingSink;

    #[async_trait]
    impl LegacySink for FailingSink {
        async fn publish_legacy(&self, _: &SealedEvent, _: &[u8]) -> Result<(), PublishError> {
            Err(PublishError::Nacked)
        }
    }

    #[tokio::test]
    async fn a_failed_legacy_copy_fails_the_publish_so_the_caller_retries() {
        let broker = Arc::new(InMemoryBroker::with_smap_topology());
        let publisher = DualPublisher::new(
            Arc::new(InMemoryEventBus::new(broker.clone())),
            Arc::new(FailingSink),
            true,
            Arc::new(EmailTemplates::new().unwrap()),
        );

        let err = publisher.publish(&verification()).await.unwrap_err();

        assert!(err.is_transient());
    }
}
