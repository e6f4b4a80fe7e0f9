//! `EventService`: validates typed event data, wraps it in an envelope with a
//! fresh id and timestamp, seals it (size limit), and publishes it under the
//! retry policy — logging and counting every outcome.

use std::{sync::Arc, time::Instant};

use super::{EventData, EventEnvelope, EventId, EventValidationError, SealedEvent};
use crate::{
    domain::{retry::RetryPolicy, timestamp::Timestamp},
    ports::{Clock, EventPublisher, IdGenerator, PlanCatalog, PlanCatalogError, PublishError},
};

/// How the events of accounts and subscriptions leave the service
/// (`EVENT_DELIVERY`, DESIGN §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDelivery {
    /// Written to the outbox in the transaction of the change they report;
    /// the relay publishes them.
    Outbox,
    /// Published by the request itself: registration inside its
    /// transaction (503 when the broker is down), the others after commit.
    Direct,
}

impl EventDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Direct => "direct",
        }
    }
}

pub struct EventService {
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    plans: Arc<dyn PlanCatalog>,
    retry: RetryPolicy,
    delivery: EventDelivery,
}

impl EventService {
    pub fn new(
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        plans: Arc<dyn PlanCatalog>,
    ) -> Self {
        Self {
            publisher,
            clock,
            ids,
            plans,
            retry: RetryPolicy::PUBLISH,
            delivery: EventDelivery::Direct,
        }
    }

    pub fn with_delivery(mut self, delivery: EventDelivery) -> Self {
        self.delivery = delivery;
        self
    }

    pub fn delivery(&self) -> EventDelivery {
        self.delivery
    }

    /// Validates and seals `data` without asking the plan catalogue: for
    /// events sealed inside a store transaction (the expiry sweep, an OTP
    /// re-send) about rows whose plan code the database's foreign key
    /// already guarantees, or that name no plan.
    pub fn seal(&self, data: EventData) -> Result<SealedEvent, PublishError> {
        let routing_key = data.routing_key();
        let now = self.clock.now();
        let result = data
            .validate(now)
            .map_err(PublishError::from)
            .and_then(|()| {
                let id = EventId::from_uuid(self.ids.new_uuid());
                Ok(EventEnvelope::new(id, Timestamp::new(now), data).seal()?)
            });
        if let Err(error) = &result {
            tracing::error!(error = %error, routing_key = %routing_key, "event not sealed: it failed validation");
            count_failure(routing_key.as_str(), error);
        }
        result
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Validates `data` and seals it into an envelope, without publishing;
    /// for callers that must publish at a chosen moment (inside a database
    /// transaction, say) or publish the same event again.
    pub async fn prepare(&self, data: EventData) -> Result<SealedEvent, PublishError> {
        let routing_key = data.routing_key();
        let result = self.try_prepare(data).await;
        if let Err(error) = &result {
            tracing::error!(
                error = %error,
                routing_key = %routing_key,
                error_type = error.error_type(),
                "event not published: it failed validation"
            );
            count_failure(routing_key.as_str(), error);
        }
        result
    }

    /// Like [`EventService::prepare`], for an event whose id and time were
    /// fixed earlier — recorded with the fact it reports, so that every
    /// publication of that fact carries the same id.
    pub async fn prepare_recorded(
        &self,
        id: EventId,
        at: Timestamp,
        data: EventData,
    ) -> Result<SealedEvent, PublishError> {
        let routing_key = data.routing_key();
        let result = self.check(&data).await.and_then(|()| {
            EventEnvelope::new(id, at, data)
                .seal()
                .map_err(PublishError::from)
        });
        if let Err(error) = &result {
            tracing::error!(
                error = %error,
                event_id = %id,
                routing_key = %routing_key,
                error_type = error.error_type(),
                "event not published: it failed validation"
            );
            count_failure(routing_key.as_str(), error);
        }
        result
    }

    async fn try_prepare(&self, data: EventData) -> Result<SealedEvent, PublishError> {
        let now = self.clock.now();
        self.check(&data).await?;
        let id = EventId::from_uuid(self.ids.new_uuid());
        Ok(EventEnvelope::new(id, Timestamp::new(now), data).seal()?)
    }

    /// The rules of DESIGN §2, and the plan catalogue for events naming one.
    async fn check(&self, data: &EventData) -> Result<(), PublishError> {
        let now = self.clock.now();
        data.validate(now)?;
        if let Some(code) = data.plan_code() {
            match self.plans.exists(code).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(EventValidationError::UnknownPlan {
                        plan_code: code.to_string(),
                    }
                    .into());
                }
                Err(PlanCatalogError::Unavailable(cause)) => {
                    return Err(PublishError::Unavailable(cause));
                }
            }
        }
        Ok(())
    }

    /// Validates, seals and publishes `data`; returns the new event's id.
    pub async fn publish(&self, data: EventData) -> Result<EventId, PublishError> {
        let event = self.prepare(data).await?;
        self.publish_sealed(&event).await
    }

    /// Publishes an already sealed event (again, possibly: same `event_id`),
    /// retrying transient failures.
    pub async fn publish_sealed(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        self.retry
            .run(
                |attempt| self.publish_once(event, attempt),
                PublishError::is_transient,
            )
            .await
    }

    /// One publish attempt, logged and counted: the outbox relay retries by
    /// itself, row by row.
    pub async fn publish_sealed_once(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        self.publish_once(event, 1).await
    }

    async fn publish_once(
        &self,
        event: &SealedEvent,
        attempt: u32,
    ) -> Result<EventId, PublishError> {
        let envelope = event.envelope();
        let routing_key = envelope.routing_key.as_str();
        let started = Instant::now();
        // A producer span: the transport puts its context in the message.
        let span = tracing::info_span!(
            "publish",
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.destination.name = "smap.events",
            messaging.rabbitmq.destination.routing_key = routing_key,
            messaging.message.id = %envelope.event_id,
        );
        let result = tracing::Instrument::instrument(self.publisher.publish(event), span).await;
        metrics::histogram!("event_publish_duration_seconds", "routing_key" => routing_key.to_owned())
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                tracing::info!(
                    event_id = %envelope.event_id,
                    routing_key,
                    service = %envelope.service,
                    action = envelope.action(),
                    timestamp = %envelope.timestamp,
                    "event published"
                );
                metrics::counter!("events_published_total", "routing_key" => routing_key.to_owned())
                    .increment(1);
            }
            Err(error) => {
                tracing::error!(
                    error = %error,
                    event_id = %envelope.event_id,
                    routing_key,
                    payload_size = event.size(),
                    retry_attempt = attempt,
                    transient = error.is_transient(),
                    "event publish failed"
                );
                count_failure(routing_key, error);
            }
        }
        result
    }
}

fn count_failure(routing_key: &str, error: &PublishError) {
    metrics::counter!(
        "event_publish_failures_total",
        "routing_key" => routing_key.to_owned(),
        "error_type" => error.error_type()
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::{
        adapters::{
            memory::InMemoryPlanCatalog,
            memory::{ManualClock, SequentialIds},
            system::RandomIds,
        },
        domain::{
            billing::PlanCode,
            billing::SubscriptionStatus,
            email_address::Email,
            events::{EmailVerificationPayload, SubscriptionCreatedPayload},
            locale::Locale,
            otp::OtpCode,
        },
        ports::MockEventPublisher,
    };

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
        ))
    }

    fn verification(clock: &ManualClock) -> EventData {
        EventData::EmailVerificationRequested(EmailVerificationPayload {
            user_id: Uuid::new_v4(),
            recipient: Email::parse("ann@example.com").unwrap(),
            otp_code: OtpCode::parse("123456").unwrap(),
            locale: Locale::En,
            expires_at: Timestamp::new(clock.now() + Duration::minutes(10)),
        })
    }

    fn trial(clock: &ManualClock, plan: &str) -> EventData {
        let now = Timestamp::new(clock.now());
        EventData::SubscriptionCreated(SubscriptionCreatedPayload {
            subscription_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            plan_code: PlanCode::parse(plan).unwrap(),
            status: SubscriptionStatus::Trialing,
            created_at: now,
            trial_start: Some(now),
            trial_end: Some(Timestamp::new(clock.now() + Duration::days(14))),
            subscription_start: None,
            subscription_end: None,
        })
    }

    fn service(publisher: MockEventPublisher, clock: Arc<ManualClock>) -> EventService {
        EventService::new(
            Arc::new(publisher),
            clock,
            Arc::new(SequentialIds::default()),
            Arc::new(InMemoryPlanCatalog::with_defaults()),
        )
    }

    #[tokio::test]
    async fn publishes_an_envelope_stamped_by_the_clock_and_id_source() {
        let clock = clock();
        let mut publisher = MockEventPublisher::new();
        publisher
            .expect_publish()
            .times(1)
            .returning(|event| Ok(event.event_id()));
        let service = service(publisher, clock.clone());

        let id = service.publish(verification(&clock)).await.unwrap();

        let expected = SequentialIds::default().new_uuid();
        assert_eq!(id, EventId::from_uuid(expected));
    }

    #[tokio::test]
    async fn invalid_events_are_never_handed_to_the_publisher() {
        let clock = clock();
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().never();
        let service = service(publisher, clock.clone());
        let stale = verification(&clock);
        clock.advance(Duration::minutes(11));

        let err = service.publish(stale).await.unwrap_err();

        assert!(matches!(
            err,
            PublishError::Rejected(EventValidationError::NotInFuture {
                field: "expires_at"
            })
        ));
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn subscription_events_must_name_an_existing_plan() {
        let clock = clock();
        let mut publisher = MockEventPublisher::new();
        publisher
            .expect_publish()
            .times(1)
            .returning(|e| Ok(e.event_id()));
        let service = service(publisher, clock.clone());

        assert!(service.publish(trial(&clock, "free")).await.is_ok());
        let err = service.publish(trial(&clock, "gold")).await.unwrap_err();

        assert!(matches!(
            err,
            PublishError::Rejected(EventValidationError::UnknownPlan { ref plan_code }) if plan_code == "gold"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_three_times_with_the_same_event_id() {
        let clock = clock();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut publisher = MockEventPublisher::new();
        let log = seen.clone();
        publisher.expect_publish().times(3).returning(move |event| {
            log.lock().unwrap().push(event.event_id());
            Err(PublishError::Nacked)
        });
        let service = service(publisher, clock.clone());

        let err = service.publish(verification(&clock)).await.unwrap_err();

        assert!(matches!(err, PublishError::Nacked));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|id| *id == seen[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let clock = clock();
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().times(1).returning(|_| {
            Err(PublishError::Unexpected(anyhow::anyhow!(
                "no such exchange"
            )))
        });
        let service = service(publisher, clock.clone());

        assert!(service.publish(verification(&clock)).await.is_err());
    }

    #[tokio::test]
    async fn event_ids_are_unique_over_100_000_envelopes_and_timestamps_are_canonical() {
        let clock = clock();
        clock.advance(Duration::nanoseconds(123_456_789));
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().never();
        let service = EventService::new(
            Arc::new(publisher),
            clock.clone(),
            Arc::new(RandomIds),
            Arc::new(InMemoryPlanCatalog::with_defaults()),
        );
        let mut ids = HashSet::new();
        for _ in 0..100_000 {
            let sealed = service.prepare(verification(&clock)).await.unwrap();
            let id = sealed.event_id();
            assert_eq!(id.uuid().get_version_num(), 4);
            ids.insert(id);
        }
        assert_eq!(ids.len(), 100_000);

        let sealed = service.prepare(verification(&clock)).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(sealed.body()).unwrap();
        assert_eq!(json["timestamp"], "2026-11-27T10:00:00.123Z");
    }
}
