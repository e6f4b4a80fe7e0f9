//! Trace context crosses the bus: every published message carries a W3C
//! `traceparent`, and the two copies of a dual-published e-mail share the
//! request's trace.

use serde_json::json;
use smap_identity::adapters::bus::topology::EVENTS_EXCHANGE;

use crate::helpers::{EMAILS_QUEUE, spawn_app};

fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[0], "00");
    assert!(
        fields[1].len() == 32 && fields[1].bytes().all(|b| b.is_ascii_hexdigit()),
        "{traceparent}"
    );
    assert!(
        fields[2].len() == 16 && fields[2].bytes().all(|b| b.is_ascii_hexdigit()),
        "{traceparent}"
    );
    assert_ne!(fields[1], "0".repeat(32));
    (fields[1].to_owned(), fields[2].to_owned())
}

#[tokio::test]
async fn published_events_carry_the_requests_trace_context() {
    let app = spawn_app().await;
    #[cfg(feature = "legacy-fanout")]
    {
        app.broker.declare_queue("test.legacy");
        app.broker
            .bind(
                "test.legacy",
                smap_identity::adapters::bus::topology::LEGACY_EXCHANGE,
                "",
            )
            .unwrap();
    }

    app.post_json(
        "/authentication/register",
        &json!({"email": "trace@example.com", "password": "correct horse battery"}),
    )
    .await;
    app.post_json(
        "/authentication/register",
        &json!({"email": "other@example.com", "password": "correct horse battery"}),
    )
    .await;

    let first = app
        .broker
        .try_take(EMAILS_QUEUE)
        .unwrap()
        .expect("the first event");
    let second = app
        .broker
        .try_take(EMAILS_QUEUE)
        .unwrap()
        .expect("the second event");
    let (trace, _) = parts(first.properties.headers["traceparent"].as_str().unwrap());
    let (other_trace, _) = parts(second.properties.headers["traceparent"].as_str().unwrap());
    assert_ne!(trace, other_trace, "each request is its own trace");
    assert_eq!(first.exchange, EVENTS_EXCHANGE);
    #[cfg(feature = "legacy-fanout")]
    {
        let legacy = app
            .broker
            .try_take("test.legacy")
            .unwrap()
            .expect("the legacy copy");
        let (legacy_trace, _) = parts(legacy.properties.headers["traceparent"].as_str().unwrap());
        assert_eq!(
            legacy_trace, trace,
            "the legacy copy continues the same trace"
        );
    }
}
