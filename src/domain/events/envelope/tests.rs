//! The envelope on the wire: event ids, the JSON layout of DESIGN §2,
//! parse errors naming their path, and the size limit.

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
