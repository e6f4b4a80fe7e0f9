//! JSON Schemas (draft 2020-12) of the events on `smap.events`, generated
//! from the Rust types with `schemars`: one for the envelope with any data,
//! and one per routing key with its typed data. They are committed under
//! `docs/schemas/`; a test fails when the committed files differ from what
//! this module generates (`UPDATE_SCHEMAS=1 cargo test schemas` rewrites
//! them).

use std::{borrow::Cow, collections::BTreeMap};

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Value, json};

use crate::domain::{
    billing::{PlanCode, SubscriptionStatus},
    email_address::Email,
    events::{
        CancellationReason, EmailVerificationPayload, EventId, JobCompletedPayload,
        ProjectCreatedPayload, RoutingKey, SubscriptionCancelledPayload,
        SubscriptionCreatedPayload, SubscriptionStatusChangedPayload, TransitionReason, keys,
    },
    locale::Locale,
    otp::OtpCode,
    progress::ProjectId,
    timestamp::Timestamp,
};

/// Where the generated files live, relative to the repository root.
pub const SCHEMA_DIR: &str = "docs/schemas";
const BASE_URI: &str = "https://smap.dev/schemas/identity/";

/// A newtype that travels as a string checked by its own `parse`: its
/// schema states the same rule.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

string_schema!(Timestamp, "Timestamp", {
    "type": "string",
    "description": "RFC 3339 UTC with exactly three fraction digits and `Z`.",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
    "examples": ["2026-11-27T10:15:30.123Z"]
});
string_schema!(EventId, "EventId", {
    "type": "string",
    "description": "`evt_` followed by a lowercase hyphenated UUID; the de-duplication key.",
    "pattern": "^evt_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
});
string_schema!(RoutingKey, "RoutingKey", {
    "type": "string",
    "description": "`<domain>.<action>`: words of `a-z` and `_` joined by dots.",
    "pattern": "^[a-z_]+(\\.[a-z_]+)+$",
    "maxLength": 255
});
string_schema!(Email, "Email", {
    "type": "string",
    "format": "email",
    "maxLength": 254
});
string_schema!(Locale, "Locale", {
    "type": "string",
    "enum": ["en", "vi"]
});
string_schema!(SubscriptionStatus, "SubscriptionStatus", {
    "type": "string",
    "enum": ["trialing", "active", "cancelled", "expired", "past_due"]
});
string_schema!(OtpCode, "OtpCode", {
    "type": "string",
    "description": "Six decimal digits.",
    "pattern": "^[0-9]{6}$"
});
string_schema!(PlanCode, "PlanCode", {
    "type": "string",
    "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$"
});
string_schema!(ProjectId, "ProjectId", {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{1,64}$"
});
string_schema!(CancellationReason, "CancellationReason", {
    "type": "string",
    "description": "`user_requested`, `trial_expired`, `admin_action` (then `admin_user_id` is set), or the user's own words.",
    "minLength": 1,
    "maxLength": 500
});
string_schema!(TransitionReason, "TransitionReason", {
    "type": "string",
    "description": "A snake_case reason: `upgraded`, `payment_failed`, `subscription_ended`, ...",
    "pattern": "^[a-z_]{1,64}$"
});

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

/// The schema of the `data` of `routing_key`, with its own `$defs`.
pub fn data_schema(routing_key: &str) -> Option<Value> {
    let mut generator = generator();
    let schema = match routing_key {
        keys::EMAIL_VERIFICATION_REQUESTED => {
            generator.root_schema_for::<EmailVerificationPayload>()
        }
        keys::SUBSCRIPTION_CREATED => generator.root_schema_for::<SubscriptionCreatedPayload>(),
        keys::SUBSCRIPTION_CANCELLED => generator.root_schema_for::<SubscriptionCancelledPayload>(),
        keys::SUBSCRIPTION_STATUS_CHANGED => {
            generator.root_schema_for::<SubscriptionStatusChangedPayload>()
        }
        keys::JOB_COMPLETED => generator.root_schema_for::<JobCompletedPayload>(),
        keys::PROJECT_CREATED => generator.root_schema_for::<ProjectCreatedPayload>(),
        _ => return None,
    };
    Some(schema.to_value())
}

fn string_def<T: JsonSchema>() -> Value {
    T::json_schema(&mut generator()).to_value()
}

/// The envelope of DESIGN §2 around `data` (and its `$defs`). With a routing
/// key, `routing_key` and `action` are fixed to it.
fn envelope(routing_key: Option<&str>, data: Value) -> Value {
    let (mut defs, data) = match data {
        Value::Object(mut map) => {
            let defs = map.remove("$defs").unwrap_or_else(|| json!({}));
            map.remove("$schema");
            (defs, Value::Object(map))
        }
        other => (json!({}), other),
    };
    defs["Timestamp"] = string_def::<Timestamp>();
    defs["EventId"] = string_def::<EventId>();
    defs["RoutingKey"] = string_def::<RoutingKey>();
    let (file, title, key, action) = match routing_key {
        Some(key) => (
            format!("{key}.schema.json"),
            format!("SMAP event `{key}`"),
            json!({"const": key}),
            json!({"const": key.split_once('.').map(|(_, a)| a).unwrap_or_default()}),
        ),
        None => (
            "envelope.schema.json".to_owned(),
            "SMAP event envelope".to_owned(),
            json!({"$ref": "#/$defs/RoutingKey"}),
            json!({
                "type": "string",
                "description": "The routing key without its first word."
            }),
        ),
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{BASE_URI}{file}"),
        "title": title,
        "description": "Published on the topic exchange `smap.events` with the routing key as AMQP routing key, `message_id` = `event_id`, content type application/json. Consumers de-duplicate by `event_id` and ignore fields they do not know.",
        "type": "object",
        "required": ["event_id", "timestamp", "payload"],
        "properties": {
            "event_id": {"$ref": "#/$defs/EventId"},
            "timestamp": {"$ref": "#/$defs/Timestamp"},
            "payload": {
                "type": "object",
                "required": ["service", "action", "routing_key", "data"],
                "properties": {
                    "service": {
                        "type": "string",
                        "description": "The publishing service (`identity` for this one)."
                    },
                    "action": action,
                    "routing_key": key,
                    "idempotency_key": {
                        "type": "string",
                        "description": "Present on subscription events: the subscription id."
                    },
                    "data": data
                }
            }
        },
        "$defs": defs
    })
}

/// Every schema file: `envelope.schema.json` and one per routing key,
/// as pretty JSON with a final newline.
pub fn all() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let any_data = json!({"type": "object", "description": "The typed data of the routing key (see its own schema)."});
    files.insert("envelope.schema.json".to_owned(), envelope(None, any_data));
    for key in keys::ALL {
        if let Some(data) = data_schema(key) {
            files.insert(format!("{key}.schema.json"), envelope(Some(key), data));
        }
    }
    files
        .into_iter()
        .map(|(name, schema)| {
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            (name, text + "\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_status_schema_lists_every_status_as_serde_writes_it() {
        let schema = SubscriptionStatus::json_schema(&mut generator());
        let listed: Vec<Value> = SubscriptionStatus::ALL
            .iter()
            .map(|s| serde_json::to_value(s).expect("a status serialises"))
            .collect();

        assert_eq!(schema.get("enum"), Some(&Value::Array(listed)));
    }
}
