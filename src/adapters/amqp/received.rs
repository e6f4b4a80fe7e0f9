//! A received message's properties in the transport-neutral form the
//! handler and the dead letter use.

use lapin::{message::Delivery, types::AMQPValue};

use crate::adapters::bus::message::{HeaderValue, MessageProperties};

/// Text and integer headers are kept (a dead letter carries them on);
/// other field types are not.
fn header(value: &AMQPValue) -> Option<HeaderValue> {
    Some(match value {
        AMQPValue::LongString(s) => HeaderValue::Text(s.to_string()),
        AMQPValue::ShortString(s) => HeaderValue::Text(s.to_string()),
        AMQPValue::ShortShortInt(n) => HeaderValue::Int(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => HeaderValue::Int(i64::from(*n)),
        AMQPValue::ShortInt(n) => HeaderValue::Int(i64::from(*n)),
        AMQPValue::ShortUInt(n) => HeaderValue::Int(i64::from(*n)),
        AMQPValue::LongInt(n) => HeaderValue::Int(i64::from(*n)),
        AMQPValue::LongUInt(n) => HeaderValue::Int(i64::from(*n)),
        AMQPValue::LongLongInt(n) => HeaderValue::Int(*n),
        _ => return None,
    })
}

/// The properties of a received message, in the transport-neutral form
/// (an absent `message_id` is empty, an absent `timestamp` 0).
pub(super) fn properties_of(delivery: &Delivery) -> MessageProperties {
    let p = &delivery.properties;
    let headers = p
        .headers()
        .as_ref()
        .map(|t| {
            t.inner()
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), header(v)?)))
                .collect()
        })
        .unwrap_or_default();
    MessageProperties {
        content_type: p
            .content_type()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        delivery_mode: p.delivery_mode().unwrap_or(2),
        message_id: p
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        kind: p.kind().as_ref().map(|s| s.to_string()).unwrap_or_default(),
        app_id: p
            .app_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        timestamp: p.timestamp().unwrap_or(0),
        headers,
    }
}
