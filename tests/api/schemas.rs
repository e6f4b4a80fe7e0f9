//! The JSON Schemas in docs/schemas are what the code generates, events the
//! service really publishes pass them, and every JSON example in
//! docs/event-schemas.md parses as our types, passes the validation rules
//! and its schema.

use std::{collections::BTreeMap, path::Path};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use smap_identity::{
    domain::events::EventEnvelope,
    domain::events::schemas::{self, SCHEMA_DIR},
};

use crate::helpers::{EMAILS_QUEUE, SUBSCRIPTIONS_QUEUE, spawn_app};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn validator(schema_file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo(SCHEMA_DIR).join(schema_file))
        .unwrap_or_else(|e| panic!("{schema_file}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{schema_file} is not a valid schema: {e}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_committed_schemas_are_what_the_code_generates() {
    let generated = schemas::all();
    let dir = repo(SCHEMA_DIR);
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &generated {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let committed: BTreeMap<String, String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}; run UPDATE_SCHEMAS=1 cargo test schemas"))
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "docs/schemas holds other files than the code generates; run UPDATE_SCHEMAS=1 cargo test schemas"
    );
    for (name, text) in &generated {
        assert_eq!(
            &committed[name], text,
            "docs/schemas/{name} differs from the code; run UPDATE_SCHEMAS=1 cargo test schemas"
        );
    }
}

#[tokio::test]
async fn events_the_service_publishes_pass_their_schema_and_broken_ones_do_not() {
    let app = spawn_app().await;
    let token = app.signed_up("schema@example.com").await;
    let mine: Value = app
        .client
        .get(format!("{}/subscriptions/me", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = mine["data"]["id"].as_str().expect("a subscription id");
    let cancelled = app
        .client
        .post(format!("{}/subscriptions/{id}/cancel", app.address))
        .bearer_auth(&token)
        .json(&json!({"reason": "too expensive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);
    // (signing up read the first verification e-mail; this one stays queued)
    assert_eq!(
        app.register("schema-2@example.com", "correct horse battery")
            .await
            .status()
            .as_u16(),
        201
    );

    let mut seen = Vec::new();
    let mut verification = Value::Null;
    for queue in [EMAILS_QUEUE, SUBSCRIPTIONS_QUEUE] {
        while let Some(message) = app.broker.try_take(queue).unwrap() {
            let event: Value = serde_json::from_slice(&message.body).unwrap();
            let key = event["payload"]["routing_key"].as_str().unwrap().to_owned();
            for file in [
                "envelope.schema.json".to_owned(),
                format!("{key}.schema.json"),
            ] {
                let found = errors(&validator(&file), &event);
                assert!(
                    found.is_empty(),
                    "{key} against {file}: {found:?}\n{event:#}"
                );
            }
            if key == "email.verification.requested" {
                verification = event.clone();
            }
            seen.push(key);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "email.verification.requested",
            "subscription.cancelled",
            "subscription.created"
        ]
    );

    // The schema is not a rubber stamp.
    let mut broken = verification;
    let schema = validator("email.verification.requested.schema.json");
    broken["payload"]["data"]["otp_code"] = json!("12345");
    assert!(
        !errors(&schema, &broken).is_empty(),
        "a five-digit OTP passed"
    );
    broken["payload"]["data"]["otp_code"] = json!("123456");
    broken["payload"]["data"]["recipient"] = json!("not-an-address");
    assert!(!errors(&schema, &broken).is_empty(), "a bad address passed");
    broken["payload"]["data"]
        .as_object_mut()
        .unwrap()
        .remove("recipient");
    assert!(
        !errors(&schema, &broken).is_empty(),
        "a missing field passed"
    );
}

/// The ```json blocks of a Markdown file.
fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_example_in_event_schemas_md_is_a_valid_event_of_its_type() {
    let markdown = std::fs::read_to_string(repo("docs/event-schemas.md")).unwrap();
    let blocks = json_blocks(&markdown);
    let mut keys = Vec::new();
    for block in &blocks {
        let event: Value = serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}:\n{block}"));
        // The Rust types: every field, its type and the action/key agreement.
        let parsed = EventEnvelope::from_json(block.as_bytes())
            .unwrap_or_else(|e| panic!("not an event: {e}\n{block}"));
        // The validation rules, at the time the event says it was sent.
        let sent: DateTime<Utc> = parsed.timestamp.as_datetime();
        parsed
            .data
            .validate(sent)
            .unwrap_or_else(|e| panic!("breaks a rule: {e}\n{block}"));
        // Written back, it is the same JSON (nothing lost, nothing added).
        let written: Value = serde_json::from_slice(&parsed.to_json()).unwrap();
        assert_eq!(written, event, "round trip");
        let key = parsed.routing_key.as_str().to_owned();
        for file in [
            "envelope.schema.json".to_owned(),
            format!("{key}.schema.json"),
        ] {
            let found = errors(&validator(&file), &event);
            assert!(found.is_empty(), "{key} example against {file}: {found:?}");
        }
        keys.push(key);
    }
    // One example per published event type at least.
    for key in smap_identity::domain::events::keys::ALL {
        assert!(keys.iter().any(|k| k == key), "no example of {key}");
    }
}
