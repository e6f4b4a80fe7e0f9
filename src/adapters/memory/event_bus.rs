//! `InMemoryEventBus`: the `EventPublisher` over an [`InMemoryBroker`], publishing
//! to `smap.events` with the same properties the RabbitMQ adapter sets.

use std::sync::Arc;

use async_trait::async_trait;

use super::InMemoryBroker;
use crate::{
    adapters::{message::MessageProperties, topology::EVENTS_EXCHANGE},
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
        self.broker
            .publish(
                EVENTS_EXCHANGE,
                event.routing_key().as_str(),
                MessageProperties::for_event(event),
                event.body(),
            )
            .map_err(|e| PublishError::Unexpected(e.into()))?;
        Ok(event.event_id())
    }
}
