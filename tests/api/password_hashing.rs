//! Bounded password hashing over HTTP: when every Argon2 slot stays taken
//! for the whole allowed wait, register, login, send-otp and
//! change-password answer 503 with `Retry-After` and the SMAP envelope —
//! never a 500, and a shed registration stores nothing.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use reqwest::Response;
use serde_json::{Value, json};
use smap_identity::{
    adapters::argon2::{ARGON2_LANES, ARGON2_MEMORY_KIB, Argon2Hasher, HashBound},
    domain::email_address::Email,
};

use crate::helpers::{TestApp, json, spawn_app_with};

const PASSWORD: &str = "correct horse battery";
const AT_ONCE: usize = 8;

/// One slot, no waiting, and ten times OWASP's iterations (~0.5 s a hash):
/// the first of a burst holds the slot while all the others arrive.
async fn app_with_one_slow_slot() -> TestApp {
    spawn_app_with(|adapters| {
        adapters.hasher = Arc::new(
            Argon2Hasher::with(ARGON2_MEMORY_KIB, 20, ARGON2_LANES).bounded(HashBound {
                concurrency: 1,
                max_wait: Duration::ZERO,
            }),
        );
    })
    .await
}

/// Statuses of `responses`, after checking every 503 is the shed answer.
async fn statuses(responses: Vec<Response>) -> Vec<u16> {
    let mut out = Vec::new();
    for response in responses {
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let (status, body) = json(response).await;
        if status == 503 {
            assert_shed(retry_after.as_deref(), &body);
        }
        out.push(status);
    }
    out
}

fn assert_shed(retry_after: Option<&str>, body: &Value) {
    assert_eq!(retry_after, Some("1"), "{body}");
    assert_eq!(body["error_code"], 50300, "{body}");
    assert_eq!(body["data"]["retry_after_secs"], 1, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("retry in 1 s"), "{message}");
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn logins_beyond_the_hashing_bound_get_503_with_retry_after_even_for_unknown_emails() {
    let app = app_with_one_slow_slot().await;

    let bodies: Vec<Value> = (0..AT_ONCE)
        .map(|i| json!({"email": format!("nobody{i}@example.com"), "password": PASSWORD}))
        .collect();
    let responses = join_all(
        bodies
            .iter()
            .map(|body| app.post_json("/authentication/login", body)),
    )
    .await;
    let statuses = statuses(responses).await;

    assert_eq!(
        count(&statuses, 401) + count(&statuses, 503),
        AT_ONCE,
        "{statuses:?}"
    );
    assert!(count(&statuses, 401) >= 1, "one got the slot: {statuses:?}");
    assert!(
        count(&statuses, 503) >= 1,
        "the rest were shed: {statuses:?}"
    );
}

#[tokio::test]
async fn a_registration_shed_by_the_hashing_bound_stores_nothing() {
    let app = app_with_one_slow_slot().await;
    let emails: Vec<String> = (0..AT_ONCE)
        .map(|i| format!("new{i}@example.com"))
        .collect();

    let responses = join_all(emails.iter().map(|email| app.register(email, PASSWORD))).await;
    let statuses = statuses(responses).await;

    assert!(count(&statuses, 201) >= 1, "{statuses:?}");
    assert!(count(&statuses, 503) >= 1, "{statuses:?}");
    for (email, status) in emails.iter().zip(&statuses) {
        let stored = app
            .identity
            .user_by_email(&Email::parse(email).unwrap())
            .await
            .unwrap();
        assert_eq!(stored.is_some(), *status == 201, "{email}: {status}");
    }
}

#[tokio::test]
async fn send_otp_and_change_password_are_bounded_too() {
    let app = app_with_one_slow_slot().await;
    let token = app.signed_up("kim@example.com").await;

    let resend = json!({"email": "kim@example.com", "password": PASSWORD});
    let resends = (0..AT_ONCE / 2).map(|_| app.post_json("/authentication/send-otp", &resend));
    let changes = (0..AT_ONCE / 2).map(|_| async {
        app.client
            .post(app.url("/users/me/change-password"))
            .bearer_auth(&token)
            .json(
                &json!({"current_password": "not the password", "new_password": "a brand new one"}),
            )
            .send()
            .await
            .unwrap()
    });
    let (resends, changes) = tokio::join!(join_all(resends), join_all(changes));
    let mut answers = statuses(resends).await;
    answers.extend(statuses(changes).await);

    // Checked: 409 (already verified) for send-otp, 400 (wrong current
    // password) for change-password; shed: 503; refused by the account's
    // password-check limit, before any hash: 429. Never a 500.
    assert_eq!(
        count(&answers, 409) + count(&answers, 400) + count(&answers, 503) + count(&answers, 429),
        AT_ONCE,
        "{answers:?}"
    );
    assert!(count(&answers, 503) >= 1, "{answers:?}");
}
