//! The e-mail consumers on the in-memory bus: one e-mail per event, the
//! legacy queue, retries, dead letters.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use smap_identity::{
    adapters::{
        bus::message::MessageProperties,
        bus::topology::{EMAIL_ERRORS_QUEUE, EVENTS_EXCHANGE},
        memory::InMemoryMailer,
    },
    ports::OutgoingEmail,
};

use crate::helpers::{TestApp, json as json_of, spawn_app_with};

async fn app() -> (TestApp, Arc<InMemoryMailer>) {
    let mailer = Arc::new(InMemoryMailer::new());
    let m = mailer.clone();
    let app = spawn_app_with(move |a| a.mailer = m).await;
    (app, mailer)
}

/// Waits (at most `wait`) until `enough` e-mails were sent.
async fn sent(mailer: &InMemoryMailer, enough: usize, wait: Duration) -> Vec<OutgoingEmail> {
    let deadline = Instant::now() + wait;
    while mailer.sent().len() < enough && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mailer.sent()
}

fn props(id: &str, kind: &str) -> MessageProperties {
    MessageProperties {
        content_type: "application/json".into(),
        delivery_mode: 2,
        message_id: id.into(),
        kind: kind.into(),
        app_id: "test".into(),
        timestamp: 0,
        headers: Default::default(),
    }
}

async fn dead_letters(
    app: &TestApp,
    enough: usize,
) -> Vec<smap_identity::adapters::memory::Delivery> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = Vec::new();
    while out.len() < enough && Instant::now() < deadline {
        match app.broker.try_take(EMAIL_ERRORS_QUEUE).unwrap() {
            Some(d) => out.push(d),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    out
}

#[tokio::test]
async fn a_registration_sends_exactly_one_email_with_the_otp_in_its_language() {
    let (app, mailer) = app().await;

    let (status, _) = json_of(
        app.post_json(
            "/authentication/register",
            &json!({"email": "mai@example.com", "password": "correct horse battery", "locale": "vi"}),
        )
        .await,
    )
    .await;
    let otp = app.otp_for("mai@example.com").await;
    let emails = sent(&mailer, 2, Duration::from_secs(1)).await;

    assert_eq!(status, 201);
    assert_eq!(
        emails.len(),
        1,
        "the envelope and its legacy copy give one e-mail"
    );
    let email = &emails[0];
    assert_eq!(email.to, "mai@example.com");
    assert_eq!(email.subject, "Mã xác thực SMAP của bạn");
    assert!(email.text.as_deref().unwrap().contains(&otp));
    assert!(email.html.contains(&otp));
    assert!(email.message_id.starts_with("evt_"));
}

#[cfg(feature = "legacy-fanout")]
#[tokio::test]
async fn a_legacy_message_on_the_fanout_exchange_is_delivered() {
    let (app, mailer) = app().await;
    let legacy = json!({"Subject": "Hello", "Recipient": "old@example.com", "Body": "<p>from the Go service</p>",
                        "ReplyTo": "", "CcAddresses": null, "Attachments": null});

    app.broker
        .publish(
            smap_identity::adapters::bus::topology::LEGACY_EXCHANGE,
            "",
            props("legacy-1", ""),
            legacy.to_string().as_bytes(),
        )
        .unwrap();

    let emails = sent(&mailer, 1, Duration::from_secs(3)).await;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].to, "old@example.com");
    assert_eq!(emails[0].subject, "Hello");
}

#[tokio::test]
async fn garbage_and_a_bad_otp_are_dead_lettered_at_once_and_good_mail_still_flows() {
    let (app, mailer) = app().await;
    app.register("good-first@example.com", "correct horse battery")
        .await;
    let mut envelope: serde_json::Value = {
        let mut events = app.drain(crate::helpers::EMAILS_QUEUE).await;
        serde_json::from_slice(&events.remove(0).to_json()).unwrap()
    };
    app.broker
        .publish(
            EVENTS_EXCHANGE,
            "email.verification.requested",
            props("junk-1", "x"),
            b"not json",
        )
        .unwrap();
    envelope["payload"]["data"]["otp_code"] = json!("12ab56");
    envelope["event_id"] = json!(format!("evt_{}", uuid::Uuid::new_v4()));
    app.broker
        .publish(
            EVENTS_EXCHANGE,
            "email.verification.requested",
            props("bad-otp", "x"),
            envelope.to_string().as_bytes(),
        )
        .unwrap();
    app.register("good-after@example.com", "correct horse battery")
        .await;

    let dead = dead_letters(&app, 2).await;
    let emails = sent(&mailer, 2, Duration::from_secs(3)).await;

    assert_eq!(dead.len(), 2);
    for d in &dead {
        let h = &d.properties.headers;
        let text = |k: &str| h[k].as_str().unwrap();
        assert!(text("x-error").starts_with("invalid message"), "{h:?}");
        assert_eq!(h["x-retry-count"], 0, "an integer header");
        assert_eq!(h["x-original-exchange"], EVENTS_EXCHANGE);
        assert_eq!(h["x-original-routing-key"], "email.verification.requested");
        assert!(text("x-failed-at").ends_with('Z'));
        assert_eq!(d.properties.delivery_mode, 2);
    }
    assert!(dead.iter().any(|d| {
        d.properties.headers["x-error"]
            .as_str()
            .unwrap()
            .contains("otp_code")
    }));
    let to: Vec<&str> = emails.iter().map(|e| e.to.as_str()).collect();
    assert!(to.contains(&"good-after@example.com"), "{to:?}");
}

#[tokio::test]
async fn the_same_event_delivered_twice_sends_one_email() {
    let (app, mailer) = app().await;
    app.register("twice@example.com", "correct horse battery")
        .await;
    let event = app.drain(crate::helpers::EMAILS_QUEUE).await.remove(0);
    sent(&mailer, 1, Duration::from_secs(2)).await;

    app.broker
        .publish(
            EVENTS_EXCHANGE,
            "email.verification.requested",
            props(&event.event_id.to_string(), "x"),
            &event.to_json(),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(mailer.sent().len(), 1);
}

#[tokio::test]
async fn a_send_that_keeps_failing_is_retried_then_dead_lettered_and_later_mail_flows() {
    let (app, mailer) = app().await;
    mailer.fail_next(4);
    let started = Instant::now();

    app.register("down@example.com", "correct horse battery")
        .await;
    let dead = dead_letters(&app, 1).await;
    let took = started.elapsed();
    app.register("back@example.com", "correct horse battery")
        .await;
    // The dual-published copy waited on the lease (busy, not a duplicate);
    // once the failed delivery released it, that copy sends the e-mail.
    let expected: &[&str] = if cfg!(feature = "legacy-fanout") {
        &["back@example.com", "down@example.com"]
    } else {
        &["back@example.com"]
    };
    let emails = sent(&mailer, expected.len(), Duration::from_secs(3)).await;

    assert_eq!(dead.len(), 1, "dead-lettered after the retries");
    assert!(
        took >= Duration::from_secs(7),
        "1 s + 2 s + 4 s of backoff: {took:?}"
    );
    let h = &dead[0].properties.headers;
    assert_eq!(h["x-retry-count"], 3, "an integer header");
    assert!(h["message_id"].as_str().unwrap().starts_with("evt_"));
    let mut to: Vec<&str> = emails.iter().map(|e| e.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, expected, "one e-mail each");
}
