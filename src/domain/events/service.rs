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
    /// The value of `EVENT_DELIVERY` that selects it: `outbox` or `direct`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Direct => "direct",
        }
    }
}

/// The one way events leave the domain: every use case hands its
/// [`EventData`] here to be validated (DESIGN §2 and the plan catalogue),
/// given a fresh `evt_` id and a timestamp from the clock, sealed under the
/// size limit, and published with the retry policy. Every outcome is logged
/// with the routing key and counted (`events_published_total`,
/// `event_publish_failures_total`, `event_publish_duration_seconds`).
pub struct EventService {
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    plans: Arc<dyn PlanCatalog>,
    retry: RetryPolicy,
    delivery: EventDelivery,
}

impl EventService {
    /// A service publishing through `publisher`, with
    /// [`RetryPolicy::PUBLISH`] and [`EventDelivery::Direct`] until told
    /// otherwise.
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

    /// The same service, reporting `delivery` to the use cases that ask
    /// (the service itself publishes the same way under either).
    pub fn with_delivery(mut self, delivery: EventDelivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// How the use cases must deliver their events: through the outbox, or
    /// by publishing themselves.
    pub fn delivery(&self) -> EventDelivery {
        self.delivery
    }

    /// Validates and seals `data` without asking the plan catalogue: for
    /// events sealed inside a store transaction (the expiry sweep, an OTP
    /// re-send) about rows whose plan code the database's foreign key
    /// already guarantees, or that name no plan. Synchronous: no port is
    /// awaited. Fails with [`PublishError::Rejected`] (logged and counted)
    /// when `data` breaks a rule or the envelope is too large.
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

    /// The same service with another retry policy for
    /// [`EventService::publish`] and [`EventService::publish_sealed`].
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Validates `data` and seals it into an envelope, without publishing;
    /// for callers that must publish at a chosen moment (inside a database
    /// transaction, say) or publish the same event again.
    ///
    /// Fails with [`PublishError::Rejected`] when `data` breaks a rule, names
    /// a plan the catalogue lacks, or seals too large; with
    /// [`PublishError::Unavailable`] when the catalogue cannot be asked.
    /// Every failure is logged and counted.
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
    /// publication of that fact carries the same id. Fails as `prepare`.
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
    /// Fails as [`EventService::prepare`], or with the publisher's last
    /// error once the retry policy gives up on it (a permanent error is
    /// not retried).
    pub async fn publish(&self, data: EventData) -> Result<EventId, PublishError> {
        let event = self.prepare(data).await?;
        self.publish_sealed(&event).await
    }

    /// Publishes an already sealed event (again, possibly: same `event_id`),
    /// retrying transient failures; returns its id, or the last error.
    pub async fn publish_sealed(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        self.retry
            .run(
                |attempt| self.publish_once(event, attempt),
                PublishError::is_transient,
            )
            .await
    }

    /// One publish attempt, logged and counted: the outbox relay retries by
    /// itself, row by row. Returns the event's id, or the publisher's
    /// error.
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
mod tests;
