//! The AMQP message properties of DESIGN §2, derived from a sealed event, in a
//! transport-neutral form that the in-memory and RabbitMQ adapters share.

use std::collections::BTreeMap;

use super::topology::APP_ID;
use crate::domain::events::SealedEvent;

pub const CONTENT_TYPE_JSON: &str = "application/json";
/// AMQP `delivery_mode` 2: the broker writes the message to disk.
pub const PERSISTENT: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageProperties {
    pub content_type: String,
    pub delivery_mode: u8,
    pub message_id: String,
    /// The AMQP `type` property: the routing key.
    pub kind: String,
    pub app_id: String,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    pub headers: BTreeMap<String, String>,
}

impl MessageProperties {
    pub fn for_event(event: &SealedEvent) -> Self {
        let envelope = event.envelope();
        Self {
            content_type: CONTENT_TYPE_JSON.to_owned(),
            delivery_mode: PERSISTENT,
            message_id: envelope.event_id.to_string(),
            kind: envelope.routing_key.to_string(),
            app_id: APP_ID.to_owned(),
            timestamp: u64::try_from(envelope.timestamp.as_datetime().timestamp()).unwrap_or(0),
            headers: BTreeMap::new(),
        }
    }
}
