//! The envelope every event travels in on `smap.events` (DESIGN §2), its id,
//! and `SealedEvent`: an envelope serialized once and checked against the size
//! limit, ready for any transport.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::serde_str::serde_via_parse;
use uuid::Uuid;

use super::{EventData, RoutingKey, validation::EventValidationError};
use crate::domain::timestamp::Timestamp;

/// Largest serialized envelope accepted for publishing: 256 KiB.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The `service` field of every envelope this service publishes.
pub const SERVICE_NAME: &str = "identity";

const EVENT_ID_PREFIX: &str = "evt_";

/// `evt_` followed by a lowercase hyphenated UUID.
///
/// The de-duplication key of every consumer and the AMQP `message_id`; one
/// fact gets one id, and every publication of that fact repeats it. Its
/// text is always 40 characters, and parses back to the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

/// The text is not `evt_` and a UUID in its canonical spelling: lower case,
/// hyphenated, no braces, no `urn:uuid:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `evt_` followed by a lowercase hyphenated UUID")]
pub struct EventIdError;

impl EventId {
    /// Wraps a UUID; the id of a new event takes a fresh v4 UUID (from the
    /// `IdGenerator` port), so ids never repeat across events.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// Reads the canonical text only, so one event has one id string:
    /// upper case, the simple (unhyphenated) form or a missing prefix is
    /// [`EventIdError`].
    pub fn parse(input: &str) -> Result<Self, EventIdError> {
        let raw = input.strip_prefix(EVENT_ID_PREFIX).ok_or(EventIdError)?;
        let uuid = Uuid::try_parse(raw).map_err(|_| EventIdError)?;
        // Only the canonical spelling, so one event has one id string.
        if uuid.hyphenated().to_string() == raw {
            Ok(Self(uuid))
        } else {
            Err(EventIdError)
        }
    }

    /// The UUID the id is made of, without its `evt_` prefix.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{EVENT_ID_PREFIX}{}", self.0.hyphenated())
    }
}

serde_via_parse!(EventId, display);

/// One event: who sent it, when, under which key, and its typed data.
///
/// On the wire (DESIGN §2) it is `{event_id, timestamp, payload: {service,
/// action, routing_key, idempotency_key?, data}}`; `action` is not stored
/// but derived from the routing key. The fields are public for the
/// adapters and tests that read them; [`EventEnvelope::new`] keeps
/// `routing_key` and `idempotency_key` consistent with `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// New for every event; the AMQP `message_id` too.
    pub event_id: EventId,
    /// When the event was sealed (or, for a recorded completion, when the
    /// fact happened): UTC milliseconds.
    pub timestamp: Timestamp,
    /// The publishing service: [`SERVICE_NAME`] for the events made here;
    /// any text in an envelope read from a queue.
    pub service: String,
    /// The routing key: always the key of `data`'s variant in an envelope
    /// made by `new` or parsed by `from_json`.
    pub routing_key: RoutingKey,
    /// `payload.idempotency_key`: the subscription id on subscription
    /// events, `None` (and absent from the JSON) otherwise.
    pub idempotency_key: Option<String>,
    /// `payload.data`, typed by the routing key.
    pub data: EventData,
}

/// The JSON layout of DESIGN §2; `D` is the typed data when writing and raw
/// JSON when reading (the routing key decides its type).
#[derive(Serialize, Deserialize)]
struct Wire<D> {
    event_id: EventId,
    timestamp: Timestamp,
    payload: WirePayload<D>,
}

#[derive(Serialize, Deserialize)]
struct WirePayload<D> {
    service: String,
    action: String,
    routing_key: RoutingKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    data: D,
}

/// Why bytes received from a queue are not an envelope of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeParseError {
    /// The bytes are over [`MAX_EVENT_BYTES`]; they were not parsed.
    #[error("message is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge {
        /// Length of the message, in bytes.
        size: usize,
    },
    /// Not JSON, a required field missing, or a field breaking its rule.
    #[error("`{field}`: {message}")]
    Malformed {
        /// The JSON path of the offending field (`payload.data.otp_code`),
        /// `.` when the document itself is wrong.
        field: String,
        /// What is wrong with it, as serde (or the field's `parse`) says.
        message: String,
    },
    /// `payload.action` is not the routing key without its first word.
    #[error("`payload.action` is `{action}` but the routing key says `{expected}`")]
    ActionMismatch {
        /// The action the message carries.
        action: String,
        /// The action its routing key implies.
        expected: String,
    },
    /// A well-formed routing key that is none of [`super::keys::ALL`]; the
    /// key is carried.
    #[error("no event type is known for routing key `{0}`")]
    UnknownRoutingKey(String),
}

impl EventEnvelope {
    /// Wraps `data` under its own routing key and idempotency key, from
    /// service [`SERVICE_NAME`]. Checks nothing: validation and the size
    /// limit come with [`EventEnvelope::seal`] and the event service.
    pub fn new(event_id: EventId, timestamp: Timestamp, data: EventData) -> Self {
        Self {
            event_id,
            timestamp,
            service: SERVICE_NAME.to_owned(),
            routing_key: data.routing_key(),
            idempotency_key: data.idempotency_key(),
            data,
        }
    }

    /// The routing key without its first word.
    pub fn action(&self) -> &str {
        self.routing_key.action()
    }

    /// The JSON of DESIGN §2, compact, UTF-8. Never fails and does not
    /// check the size limit: [`EventEnvelope::seal`] does.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            event_id: self.event_id,
            timestamp: self.timestamp,
            payload: WirePayload {
                service: self.service.clone(),
                action: self.action().to_owned(),
                routing_key: self.routing_key.clone(),
                idempotency_key: self.idempotency_key.clone(),
                data: &self.data,
            },
        };
        // Serializing these types cannot fail: every map key is a string and
        // every value a plain JSON value.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Serializes once and enforces [`MAX_EVENT_BYTES`]: over it, the
    /// error is [`EventValidationError::TooLarge`]. Does not validate
    /// `data` (see [`EventData::validate`]).
    pub fn seal(self) -> Result<SealedEvent, EventValidationError> {
        let body = self.to_json();
        if body.len() > MAX_EVENT_BYTES {
            return Err(EventValidationError::TooLarge {
                size: body.len(),
                limit: MAX_EVENT_BYTES,
            });
        }
        Ok(SealedEvent {
            envelope: self,
            body,
        })
    }

    /// A sealed event read back from storage (an outbox row): parsed for
    /// its envelope, but the body stays the bytes `seal` wrote, so what
    /// goes on the wire is byte for byte what was committed (and no second
    /// serialization is paid per row). Fails as [`EventEnvelope::from_json`]
    /// does.
    pub fn reseal(bytes: Vec<u8>) -> Result<SealedEvent, EnvelopeParseError> {
        let envelope = Self::from_json(&bytes)?;
        Ok(SealedEvent {
            envelope,
            body: bytes,
        })
    }

    /// Parses an envelope and its typed data; errors name the JSON path.
    ///
    /// Checks the size limit first ([`EnvelopeParseError::TooLarge`]), then
    /// the layout and every field's type rule
    /// ([`EnvelopeParseError::Malformed`]), then that `action` matches the
    /// routing key ([`EnvelopeParseError::ActionMismatch`]), and reads `data`
    /// as that key's payload ([`EnvelopeParseError::UnknownRoutingKey`] when
    /// it has none). The time and cross-field rules are not checked: an
    /// event already published is taken as it is.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeParseError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EnvelopeParseError::TooLarge { size: bytes.len() });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire: Wire<serde_json::Value> =
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                EnvelopeParseError::Malformed {
                    field: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        let payload = wire.payload;
        if payload.action != payload.routing_key.action() {
            return Err(EnvelopeParseError::ActionMismatch {
                action: payload.action,
                expected: payload.routing_key.action().to_owned(),
            });
        }
        let data = EventData::from_json(&payload.routing_key, payload.data)?;
        Ok(Self {
            event_id: wire.event_id,
            timestamp: wire.timestamp,
            service: payload.service,
            routing_key: payload.routing_key,
            idempotency_key: payload.idempotency_key,
            data,
        })
    }
}

/// An envelope and its serialized bytes; only [`EventEnvelope::seal`] makes
/// one, so every transport sends bytes that passed the size limit.
#[derive(Debug, Clone)]
pub struct SealedEvent {
    envelope: EventEnvelope,
    body: Vec<u8>,
}

impl SealedEvent {
    /// The envelope the body was made from (or parsed into).
    pub fn envelope(&self) -> &EventEnvelope {
        &self.envelope
    }

    /// The envelope's event id: the AMQP `message_id`.
    pub fn event_id(&self) -> EventId {
        self.envelope.event_id
    }

    /// The envelope's routing key: the AMQP routing key and `type`.
    pub fn routing_key(&self) -> &RoutingKey {
        &self.envelope.routing_key
    }

    /// The bytes to send, as sealed: at most [`MAX_EVENT_BYTES`].
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Length of [`SealedEvent::body`] in bytes; at most [`MAX_EVENT_BYTES`].
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

#[cfg(test)]
mod tests;
