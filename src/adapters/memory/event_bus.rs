//! `InMemoryEventBus`: the `EventPublisher` over an [`InMemoryBroker`], publishing
//! to `smap.events` with the same properties the RabbitMQ adapter sets, and
//! counting an event no queue is bound for as the RabbitMQ adapter does.

use std::sync::Arc;

use async_trait::async_trait;

use super::InMemoryBroker;
use crate::{
    adapters::{
        bus::message::{MessageProperties, unroutable_event},
        bus::topology::EVENTS_EXCHANGE,
    },
    domain::events::{EventId, SealedEvent},
    ports::{EventPublisher, PublishError},
};

#[derive(Clone)]
pub struct InMemoryEventBus {
    broker: Arc<InMemoryBroker>,
}

impl InMemoryEventBus {
    pub fn new(broker: Arc<InMemoryBroker>) -> Self {
        Self { broker }
    }
}

#[async_trait]
impl EventPublisher for InMemoryEventBus {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        let routed = self
            .broker
            .publish(
                EVENTS_EXCHANGE,
                event.routing_key().as_str(),
                MessageProperties::for_event(event),
                event.body(),
            )
            .map_err(|e| PublishError::Unexpected(e.into()))?;
        if routed == 0 {
            // What RabbitMQ returns for a mandatory publish.
            unroutable_event(
                event.routing_key().as_str(),
                &event.event_id().to_string(),
                "no binding matches",
            );
        }
        Ok(event.event_id())
    }
}
