//! `InMemoryLegacySink`: legacy copies into the in-memory fanout exchange.

use std::sync::Arc;

use async_trait::async_trait;

use super::InMemoryBroker;
use crate::{
    adapters::{
        bus::message::MessageProperties, bus::topology::LEGACY_EXCHANGE, legacy::LegacySink,
    },
    domain::events::SealedEvent,
    ports::PublishError,
};

pub struct InMemoryLegacySink {
    broker: Arc<InMemoryBroker>,
}

impl InMemoryLegacySink {
    pub fn new(broker: Arc<InMemoryBroker>) -> Self {
        Self { broker }
    }
}

#[async_trait]
impl LegacySink for InMemoryLegacySink {
    async fn publish_legacy(&self, event: &SealedEvent, body: &[u8]) -> Result<(), PublishError> {
        self.broker
            .publish(
                LEGACY_EXCHANGE,
                "",
                MessageProperties::for_event(event),
                body,
            )
            .map(drop)
            .map_err(|e| PublishError::Unexpected(e.into()))
    }
}
