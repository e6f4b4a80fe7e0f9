//! The AMQP message properties of DESIGN §2, derived from a sealed event, in a
//! transport-neutral form that the in-memory and RabbitMQ adapters share.

use std::collections::BTreeMap;

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::topology::APP_ID;
use crate::domain::events::SealedEvent;

struct HeaderInjector<'a>(&'a mut BTreeMap<String, String>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeaderExtractor<'a>(&'a BTreeMap<String, String>);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The current span's trace context as W3C headers (`traceparent`,
/// `tracestate`); empty outside a traced span.
pub fn trace_headers() -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(&mut headers))
    });
    headers
}

/// The producer's trace context from received headers, to continue it.
pub fn trace_context(headers: &BTreeMap<String, String>) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

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
            headers: trace_headers(),
        }
    }
}
