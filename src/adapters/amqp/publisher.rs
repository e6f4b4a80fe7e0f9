//! The ports over `AmqpBroker`: `AmqpEventPublisher` puts envelopes on
//! `smap.events` under their routing key, as mandatory messages so that one
//! no queue is bound for is counted (`events_unroutable_total`) and logged
//! instead of vanishing; `AmqpLegacySink` puts legacy copies on the fanout
//! exchange.

use async_trait::async_trait;

use super::AmqpBroker;
#[cfg(feature = "legacy-fanout")]
use crate::adapters::{bus::topology::LEGACY_EXCHANGE, legacy::LegacySink};
use crate::{
    adapters::{
        bus::message::{MessageProperties, unroutable_event},
        bus::topology::EVENTS_EXCHANGE,
    },
    domain::events::{EventId, SealedEvent},
    ports::{EventPublisher, PublishError},
};

#[derive(Clone)]
pub struct AmqpEventPublisher {
    broker: AmqpBroker,
}

impl AmqpEventPublisher {
    pub fn new(broker: AmqpBroker) -> Self {
        Self { broker }
    }
}

#[async_trait]
impl EventPublisher for AmqpEventPublisher {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        let returned = self
            .broker
            .publish_mandatory(
                EVENTS_EXCHANGE,
                event.routing_key().as_str(),
                &MessageProperties::for_event(event),
                event.body(),
            )
            .await?;
        // Described from the returned message: on a shared channel it may
        // be another event's return (see `AmqpBroker::publish_mandatory`).
        if let Some(returned) = returned {
            unroutable_event(
                &returned.routing_key,
                &returned.message_id,
                &format!("{} {}", returned.reply_code, returned.reply_text),
            );
        }
        Ok(event.event_id())
    }
}

#[cfg(feature = "legacy-fanout")]
pub struct AmqpLegacySink {
    broker: AmqpBroker,
}

#[cfg(feature = "legacy-fanout")]
impl AmqpLegacySink {
    pub fn new(broker: AmqpBroker) -> Self {
        Self { broker }
    }
}

#[cfg(feature = "legacy-fanout")]
#[async_trait]
impl LegacySink for AmqpLegacySink {
    async fn publish_legacy(&self, event: &SealedEvent, body: &[u8]) -> Result<(), PublishError> {
        self.broker
            .publish(
                LEGACY_EXCHANGE,
                "",
                &MessageProperties::for_event(event),
                body,
            )
            .await
    }
}
