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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `evt_` followed by a lowercase hyphenated UUID")]
pub struct EventIdError;

impl EventId {
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

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
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    pub event_id: EventId,
    pub timestamp: Timestamp,
    pub service: String,
    pub routing_key: RoutingKey,
    pub idempotency_key: Option<String>,
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
    #[error("message is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("`{field}`: {message}")]
    Malformed { field: String, message: String },
    #[error("`payload.action` is `{action}` but the routing key says `{expected}`")]
    ActionMismatch { action: String, expected: String },
    #[error("no event type is known for routing key `{0}`")]
    UnknownRoutingKey(String),
}

impl EventEnvelope {
    /// Wraps `data` under its own routing key and idempotency key.
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

    /// Serializes once and enforces [`MAX_EVENT_BYTES`].
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
    /// serialization is paid per row).
    pub fn reseal(bytes: Vec<u8>) -> Result<SealedEvent, EnvelopeParseError> {
        let envelope = Self::from_json(&bytes)?;
        Ok(SealedEvent {
            envelope,
            body: bytes,
        })
    }

    /// Parses an envelope and its typed data; errors name the JSON path.
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
    pub fn envelope(&self) -> &EventEnvelope {
        &self.envelope
    }

    pub fn event_id(&self) -> EventId {
        self.envelope.event_id
    }

    pub fn routing_key(&self) -> &RoutingKey {
        &self.envelope.routing_key
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn size(&self) -> usize {
        self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::{
        events::{JobCompletedPayload, keys},
        progress::ProjectId,
    };

    fn job_completed() -> EventData {
        EventData::JobCompleted(JobCompletedPayload {
            project_id: ProjectId::parse("proj_1").unwrap(),
            total: 3,
            done: 3,
            errors: 1,
            completed_at: Timestamp::new(Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()),
        })
    }

    fn envelope() -> EventEnvelope {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, 30, 45).unwrap()
            + chrono::Duration::milliseconds(123);
        EventEnvelope::new(
            EventId::from_uuid(Uuid::new_v4()),
            Timestamp::new(at),
            job_completed(),
        )
    }

    #[test]
    fn event_ids_are_evt_and_a_canonical_uuid() {
        let id = EventId::from_uuid(Uuid::new_v4());
        let text = id.to_string();
        assert!(text.starts_with("evt_"));
        assert_eq!(text.len(), 40);
        assert_eq!(EventId::parse(&text), Ok(id));
        let upper = format!("evt_{}", id.uuid().hyphenated().to_string().to_uppercase());
        for bad in [
            id.uuid().to_string(),
            upper,
            "evt_123".into(),
            format!("evt_{}", id.uuid().simple()),
        ] {
            assert_eq!(EventId::parse(&bad), Err(EventIdError), "{bad}");
        }
    }

    #[test]
    fn serializes_to_the_wire_layout_of_design_section_2() {
        let env = envelope();
        let json: Value = serde_json::from_slice(&env.to_json()).unwrap();
        assert_eq!(json["event_id"], json!(env.event_id.to_string()));
        assert_eq!(json["timestamp"], json!("2026-11-27T10:30:45.123Z"));
        assert_eq!(json["payload"]["service"], json!("identity"));
        assert_eq!(json["payload"]["action"], json!("completed"));
        assert_eq!(json["payload"]["routing_key"], json!(keys::JOB_COMPLETED));
        assert!(json["payload"].get("idempotency_key").is_none());
        assert_eq!(
            json["payload"]["data"],
            json!({"project_id": "proj_1", "total": 3, "done": 3, "errors": 1,
                   "completed_at": "2026-11-27T10:00:00.000Z"})
        );
    }

    #[test]
    fn parses_back_what_it_serializes() {
        let env = envelope();
        assert_eq!(EventEnvelope::from_json(&env.to_json()).unwrap(), env);
    }

    #[test]
    fn parse_errors_name_the_json_path() {
        let mut json: Value = serde_json::from_slice(&envelope().to_json()).unwrap();
        json["payload"]["data"]["total"] = json!(-1);
        let err = EventEnvelope::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(&err, EnvelopeParseError::Malformed { field, .. } if field == "payload.data.total"),
            "{err}"
        );

        let mut json: Value = serde_json::from_slice(&envelope().to_json()).unwrap();
        json["event_id"] = json!("evt_nope");
        let err = EventEnvelope::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(&err, EnvelopeParseError::Malformed { field, .. } if field == "event_id"));

        let mut json: Value = serde_json::from_slice(&envelope().to_json()).unwrap();
        json["payload"]["action"] = json!("finished");
        assert!(matches!(
            EventEnvelope::from_json(json.to_string().as_bytes()),
            Err(EnvelopeParseError::ActionMismatch { .. })
        ));

        let mut json: Value = serde_json::from_slice(&envelope().to_json()).unwrap();
        json["payload"]["routing_key"] = json!("job.vanished");
        json["payload"]["action"] = json!("vanished");
        assert!(matches!(
            EventEnvelope::from_json(json.to_string().as_bytes()),
            Err(EnvelopeParseError::UnknownRoutingKey(_))
        ));

        assert!(matches!(
            EventEnvelope::from_json(b"not json"),
            Err(EnvelopeParseError::Malformed { .. })
        ));
    }

    #[test]
    fn sealing_rejects_envelopes_over_256_kib() {
        let mut env = envelope();
        env.idempotency_key = Some("k".repeat(MAX_EVENT_BYTES));
        match env.seal() {
            Err(EventValidationError::TooLarge { size, limit }) => {
                assert!(size > MAX_EVENT_BYTES);
                assert_eq!(limit, MAX_EVENT_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let sealed = envelope().seal().unwrap();
        assert_eq!(sealed.body(), sealed.envelope().to_json().as_slice());
    }

    #[test]
    fn event_ids_from_v4_uuids_are_unique_over_100_000_envelopes() {
        let ids: HashSet<String> = (0..100_000)
            .map(|_| EventId::from_uuid(Uuid::new_v4()).to_string())
            .collect();
        assert_eq!(ids.len(), 100_000);
    }
}
