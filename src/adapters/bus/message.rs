//! The AMQP message properties of DESIGN §2, derived from a sealed event, in a
//! transport-neutral form that the in-memory and RabbitMQ adapters share.

use std::collections::BTreeMap;

use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::TraceContextExt as _,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::topology::APP_ID;
use crate::domain::events::SealedEvent;

/// An AMQP header value: text, or a signed 64-bit integer (field type
/// `l`, what RabbitMQ itself writes for counts). Other field types a
/// received message carries are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    Int(i64),
}

impl HeaderValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            Self::Int(_) => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Text(_) => None,
        }
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<i64> for HeaderValue {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl PartialEq<&str> for HeaderValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<i64> for HeaderValue {
    fn eq(&self, other: &i64) -> bool {
        self.as_int() == Some(*other)
    }
}

pub type Headers = BTreeMap<String, HeaderValue>;

struct HeaderInjector<'a>(&'a mut Headers);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), HeaderValue::Text(value));
    }
}

struct HeaderExtractor<'a>(&'a Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The current span's trace context as W3C headers (`traceparent`,
/// `tracestate`); empty outside a traced span. In an unsampled trace, its
/// trace id with flags `00` (the OpenTelemetry layer never saw its spans).
pub fn trace_headers() -> Headers {
    let mut headers = BTreeMap::new();
    let span = tracing::Span::current();
    let mut cx = span.context();
    if !cx.span().span_context().is_valid()
        && let Some(unsampled) = crate::adapters::sampling::unsampled_context(&span)
    {
        cx = opentelemetry::Context::new().with_remote_span_context(unsampled);
    }
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(&mut headers))
    });
    headers
}

/// The producer's trace context from received headers, to continue it.
pub fn trace_context(headers: &Headers) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// [`trace_headers`] as text only, the form the outbox keeps with a row.
pub fn trace_text() -> BTreeMap<String, String> {
    trace_headers()
        .into_iter()
        .filter_map(|(k, v)| match v {
            HeaderValue::Text(s) => Some((k, s)),
            HeaderValue::Int(_) => None,
        })
        .collect()
}

/// [`trace_context`] of a trace kept as text (an outbox row's).
pub fn trace_context_text(trace: &BTreeMap<String, String>) -> opentelemetry::Context {
    let headers: Headers = trace
        .iter()
        .map(|(k, v)| (k.clone(), HeaderValue::Text(v.clone())))
        .collect();
    trace_context(&headers)
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
    pub headers: Headers,
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

/// Counts and logs an event that no queue took (`mandatory` publishes the
/// broker returned; the in-memory bus with no matching binding): the broker
/// confirmed it, so the publish succeeded, but nobody will read it — a
/// missing consumer binding, not a fault of this service. The label is the
/// event's routing key (always one of the known ones; anything else is
/// `_OTHER`, so a label value can never be made up).
pub fn unroutable_event(routing_key: &str, event_id: &str, reason: &str) {
    let label = crate::domain::events::keys::ALL
        .into_iter()
        .find(|k| *k == routing_key)
        .unwrap_or("_OTHER");
    tracing::warn!(
        routing_key,
        event_id,
        reason,
        "event published but routed to no queue; nobody is bound to its routing key"
    );
    metrics::counter!("events_unroutable_total", "routing_key" => label).increment(1);
}
