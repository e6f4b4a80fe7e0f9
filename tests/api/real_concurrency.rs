//! DESIGN §10 over HTTP on real PostgreSQL and RabbitMQ: requests fired at
//! once, as an attacker or a busy web UI sends them, against the service —
//! and two service processes sweeping one database — each test counting what
//! was checked, sent and published.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{SubsecRound, Utc};
use futures_util::future::join_all;
use reqwest::Client;
use serde_json::{Value, json};
use smap_identity::{
    adapters::{
        bus::topology::EVENTS_EXCHANGE,
        memory::ManualClock,
        postgres::{self, PgIdentityStore},
    },
    domain::{
        account::{AccountStatus, OtpChallenge, PasswordHash, Role, User},
        billing::{BillingCycle, Plan, PlanCode, Subscription, SubscriptionStatus},
        email_address::Email,
        events::{EventData, EventEnvelope},
        locale::Locale,
        otp::OtpCode,
    },
    ports::IdentityStore,
};
use uuid::Uuid;

use crate::{
    helpers::{PASSWORD, Remote, json},
    process::Service,
    real_postgres::app,
    servers::{Probe, amqp_url, fresh_database},
};

fn envelope(d: &lapin::message::Delivery) -> Option<EventEnvelope> {
    EventEnvelope::from_json(&d.data).ok()
}

async fn post(client: &Client, url: String, body: Value) -> (u16, Value) {
    json(client.post(url).json(&body).send().await.unwrap()).await
}

/// The shared request shortcuts on this test's client.
fn remote(client: &Client, base: &str) -> Remote {
    Remote::with_client(base, client.clone())
}

/// Registers `address` and returns its user id and OTP (read from the
/// verification event on the broker).
async fn register(
    client: &Client,
    base: &str,
    emails: &mut Probe,
    address: &str,
) -> (String, String) {
    let (status, body) = remote(client, base).register(address, PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    let user_id = body["data"]["id"].as_str().unwrap().to_owned();
    let event = emails
        .collect(Duration::from_secs(10), 1, |d| {
            envelope(d).is_some_and(|e| matches!(&e.data, EventData::EmailVerificationRequested(p) if p.user_id.to_string() == user_id))
        })
        .await;
    let Some(EventData::EmailVerificationRequested(p)) =
        event.first().and_then(envelope).map(|e| e.data)
    else {
        panic!("no verification event for {address}");
    };
    (user_id, p.otp_code.as_str().to_owned())
}

/// Registers, verifies and logs in; the token.
async fn signed_up(client: &Client, base: &str, emails: &mut Probe, address: &str) -> String {
    let (_, otp) = register(client, base, emails, address).await;
    let (status, _) = remote(client, base).verify_otp(address, &otp).await;
    assert_eq!(status, 200);
    log_in(client, base, address, PASSWORD).await
}

async fn log_in(client: &Client, base: &str, address: &str, password: &str) -> String {
    let (status, body) = remote(client, base).log_in(address, password).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["token"].as_str().unwrap().to_owned()
}

fn store(database_url: &str) -> PgIdentityStore {
    PgIdentityStore::new(postgres::pool(database_url, 2).unwrap())
}

/// How many answers had each status.
fn tally(answers: &[(u16, Value)]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for (status, _) in answers {
        *counts.entry(*status).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_simultaneous_otp_guesses_compare_at_most_five_and_then_the_right_code_is_refused() {
    let Some(url) = amqp_url() else { return };
    let Some((base, db)) = app(|_| {}).await else {
        return;
    };
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let client = Client::new();
    let address = format!("otp-{}@example.com", Uuid::new_v4().simple());
    let (_, otp) = register(&client, &base, &mut emails, &address).await;
    let wrong = if otp == "000000" { "111111" } else { "000000" };

    let answers = join_all((0..60).map(|_| {
        post(
            &client,
            format!("{base}/authentication/verify-otp"),
            json!({"email": address, "otp": wrong}),
        )
    }))
    .await;
    let right = post(
        &client,
        format!("{base}/authentication/verify-otp"),
        json!({"email": address, "otp": otp}),
    )
    .await;

    let counts = tally(&answers);
    // Four wrong answers say how many attempts are left; the fifth
    // comparison and every request without a slot answer 429.
    assert_eq!(counts, BTreeMap::from([(400, 4), (429, 56)]), "{answers:?}");
    let stored = store(&db)
        .user_by_email(&Email::parse(&address).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.otp.map(|o| o.attempts),
        Some(5),
        "5 comparisons of 60"
    );
    assert_eq!(right.0, 429, "the right code after the limit: {}", right.1);
    assert_eq!(stored.status, AccountStatus::Unverified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_simultaneous_wrong_passwords_are_checked_at_most_five_times_then_the_right_one_gets_429()
 {
    let Some(url) = amqp_url() else { return };
    let Some((base, _)) = app(|_| {}).await else {
        return;
    };
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let client = Client::new();
    let address = format!("login-{}@example.com", Uuid::new_v4().simple());
    signed_up(&client, &base, &mut emails, &address).await;

    let answers = join_all((0..30).map(|_| {
        post(
            &client,
            format!("{base}/authentication/login"),
            json!({"email": address, "password": "not the password"}),
        )
    }))
    .await;
    let right = post(
        &client,
        format!("{base}/authentication/login"),
        json!({"email": address, "password": PASSWORD}),
    )
    .await;

    assert_eq!(
        tally(&answers),
        BTreeMap::from([(401, 5), (429, 25)]),
        "5 password checks of 30"
    );
    assert_eq!(right.0, 429, "{}", right.1);
    assert!(right.1["data"]["retry_after_secs"].as_i64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_simultaneous_resends_after_the_cool_down_send_one_email() {
    let Some(url) = amqp_url() else { return };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app_clock = clock.clone();
    let Some((base, _)) = app(move |a| a.clock = app_clock).await else {
        return;
    };
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let client = Client::new();
    let address = format!("resend-{}@example.com", Uuid::new_v4().simple());
    let (user_id, otp) = register(&client, &base, &mut emails, &address).await;
    clock.advance(chrono::Duration::seconds(61));

    let answers = join_all((0..20).map(|_| {
        post(
            &client,
            format!("{base}/authentication/send-otp"),
            json!({"email": address, "password": PASSWORD}),
        )
    }))
    .await;
    let sent = emails
        .collect(Duration::from_secs(3), 100, |d| {
            envelope(d).is_some_and(|e| matches!(&e.data, EventData::EmailVerificationRequested(p) if p.user_id.to_string() == user_id))
        })
        .await;

    assert_eq!(
        tally(&answers),
        BTreeMap::from([(200, 1), (429, 19)]),
        "{answers:?}"
    );
    assert_eq!(sent.len(), 1, "one e-mail event for 20 re-sends");
    let Some(EventData::EmailVerificationRequested(p)) = envelope(&sent[0]).map(|e| e.data) else {
        unreachable!()
    };
    assert_eq!(p.otp_code.as_str(), otp, "the unexpired code again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_racing_failed_logins_ends_active_with_one_live_subscription() {
    let Some(url) = amqp_url() else { return };
    let Some((base, db)) = app(|_| {}).await else {
        return;
    };
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let client = Client::new();
    let address = format!("race-{}@example.com", Uuid::new_v4().simple());
    let (user_id, otp) = register(&client, &base, &mut emails, &address).await;

    // Four wrong logins (under the lock) and two verifications at once.
    let logins = join_all((0..4).map(|_| {
        post(
            &client,
            format!("{base}/authentication/login"),
            json!({"email": address, "password": "not the password"}),
        )
    }));
    let verifications = join_all((0..2).map(|_| {
        post(
            &client,
            format!("{base}/authentication/verify-otp"),
            json!({"email": address, "otp": otp}),
        )
    }));
    let (logins, verifications) = tokio::join!(logins, verifications);

    assert_eq!(tally(&logins), BTreeMap::from([(401, 4)]));
    assert_eq!(
        tally(&verifications),
        BTreeMap::from([(200, 1), (409, 1)]),
        "{verifications:?}"
    );
    let store = store(&db);
    let user = store
        .user_by_id(user_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.status,
        AccountStatus::Active,
        "no stale write reverted it"
    );
    assert!(store.live_subscription(user.id).await.unwrap().is_some());
    log_in(&client, &base, &address, PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_racing_an_upgrade_is_serial_with_one_event_per_success() {
    let Some(url) = amqp_url() else { return };
    let Some((base, db)) = app(|_| {}).await else {
        return;
    };
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let mut subs = Probe::bind(&url, EVENTS_EXCHANGE, "subscription.#").await;
    let client = Client::new();
    let now = Utc::now().trunc_subsecs(6);
    store(&db)
        .insert_plan(&Plan {
            id: Uuid::new_v4(),
            code: PlanCode::parse("pro").unwrap(),
            name: "Pro".into(),
            description: None,
            price_minor: 900,
            currency: "USD".into(),
            billing_cycle: BillingCycle::Monthly,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();

    let mut outcomes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..8 {
        let address = format!("pair{i}-{}@example.com", Uuid::new_v4().simple());
        let token = signed_up(&client, &base, &mut emails, &address).await;
        let (_, me) = json(
            client
                .get(format!("{base}/subscriptions/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let id = me["data"]["id"].as_str().unwrap().to_owned();
        let cancel = client
            .post(format!("{base}/subscriptions/{id}/cancel"))
            .bearer_auth(&token)
            .send();
        let upgrade = client
            .post(format!("{base}/subscriptions/{id}/upgrade"))
            .bearer_auth(&token)
            .json(&json!({"plan_code": "pro"}))
            .send();
        let (cancel, upgrade) = tokio::join!(cancel, upgrade);
        outcomes.push((
            cancel.unwrap().status().as_u16(),
            upgrade.unwrap().status().as_u16(),
        ));
        ids.push(id);
    }
    let events = subs
        .collect(Duration::from_secs(3), 1000, |d| {
            let body: Value = serde_json::from_slice(&d.data).unwrap_or_default();
            body["payload"]["routing_key"] != "subscription.created"
                && ids
                    .iter()
                    .any(|id| body["payload"]["data"]["subscription_id"] == id.as_str())
        })
        .await;

    // Two outcomes are legal: the two met on the trial (one 200, one 409),
    // or the upgrade finished before the cancellation read the row, so the
    // cancellation ended the paid subscription (200, 200, in that order; a
    // cancellation first leaves nothing to upgrade). Never both on the
    // trial: each success has its one event and the final row shows who won.
    let mut successes = 0;
    for ((cancel, upgrade), id) in outcomes.iter().zip(&ids) {
        let row = store(&db)
            .subscription_by_id(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        match (cancel, upgrade) {
            (200, 409) => assert_eq!(row.status, SubscriptionStatus::Cancelled),
            (409, 200) => assert_eq!(row.status, SubscriptionStatus::Active),
            (200, 200) => {
                assert_eq!(row.status, SubscriptionStatus::Cancelled);
                assert_eq!(row.plan_code.as_str(), "pro", "upgraded, then cancelled");
            }
            other => panic!("not a serial outcome: {other:?} in {outcomes:?}"),
        }
        successes += usize::from(*cancel == 200) + usize::from(*upgrade == 200);
    }
    assert_eq!(
        events.len(),
        successes,
        "one event per success, none for a 409: {outcomes:?}"
    );
}

/// An active account with a trial that ended a minute ago, written directly.
async fn expired_trial(store: &PgIdentityStore, i: usize) -> Uuid {
    let now = Utc::now().trunc_subsecs(6);
    let user = User {
        id: Uuid::new_v4(),
        email: Email::parse(&format!("sweep{i}-{}@example.com", Uuid::new_v4().simple())).unwrap(),
        password_hash: PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        full_name: None,
        locale: Locale::En,
        role: Role::User,
        status: AccountStatus::Unverified,
        otp: Some(OtpChallenge::new(OtpCode::from_number(123_456), now)),
        failed_logins: 0,
        login_blocked_until: None,
        created_at: now,
        updated_at: now,
    };
    store
        .insert_user_then(&user, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    let ended = now - chrono::Duration::minutes(1);
    let trial = Subscription {
        id: Uuid::new_v4(),
        user_id: user.id,
        plan_code: PlanCode::free(),
        status: SubscriptionStatus::Trialing,
        trial_start: Some(ended - chrono::Duration::days(14)),
        trial_end: Some(ended),
        period_start: None,
        period_end: None,
        cancelled_at: None,
        cancellation_reason: None,
        created_at: now,
        updated_at: now,
    };
    store
        .activate_with_subscription(user.id, "123456", &trial, now, &[])
        .await
        .unwrap();
    trial.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_service_processes_sweeping_one_database_at_once_publish_one_event_per_expired_trial() {
    let Some(url) = amqp_url() else { return };
    let Some(db) = fresh_database().await else {
        return;
    };
    let env = [
        ("APP_ENV", "development"),
        ("DATABASE_URL", db.as_str()),
        ("AMQP_URL", url.as_str()),
        ("INTERNAL_KEY", "sweep-test-internal-key"),
        ("EXPIRY_SWEEP_INTERVAL_SECS", "3600"),
    ];
    // One after the other: each migrates the database at start-up.
    let a = Service::start_command("serve", &env).await;
    let b = Service::start_command("serve", &env).await;
    let store = store(&db);
    let now = Utc::now().trunc_subsecs(6);
    store
        .insert_plan(&Plan {
            id: Uuid::new_v4(),
            code: PlanCode::free(),
            name: "Free".into(),
            description: None,
            price_minor: 0,
            currency: "USD".into(),
            billing_cycle: BillingCycle::Monthly,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(expired_trial(&store, i).await.to_string());
    }
    let mut subs = Probe::bind(&url, EVENTS_EXCHANGE, "subscription.cancelled").await;
    let client = Client::new();

    // Three sweeps on each process, all at once.
    let sweeps = join_all([&a, &b, &a, &b, &a, &b].map(|service| {
        client
            .post(format!(
                "{}/internal/subscriptions/expire-due",
                service.base
            ))
            .header("X-Internal-Key", "sweep-test-internal-key")
            .send()
    }))
    .await;
    let reports: Vec<Value> = join_all(sweeps.into_iter().map(|r| r.unwrap().json::<Value>()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // The outbox relays publish after the commits: wait for the 12 (up to
    // 30 s on a loaded machine), then 3 s more for any second copy.
    let ours = |d: &lapin::message::Delivery| {
        envelope(d).is_some_and(|e| matches!(&e.data, EventData::SubscriptionCancelled(c) if ids.contains(&c.subscription_id.to_string())))
    };
    let mut events = subs.collect(Duration::from_secs(30), ids.len(), ours).await;
    events.extend(subs.collect(Duration::from_secs(3), 1000, ours).await);
    let (_, mut lines) = a.stop().await;
    lines.extend(b.stop().await.1);

    // Each process also sweeps once at start-up (the interval's first tick);
    // on a loaded machine that sweep can still be running when the trials
    // are written and take some of them. Every sweep that moved a row logs
    // "expiry sweep" with its count, so the logs add up to every move.
    let requested: i64 = reports
        .iter()
        .map(|r| r["data"]["trials_cancelled"].as_i64().unwrap())
        .sum();
    let logged: i64 = lines
        .iter()
        .filter(|l| l.contains("expiry sweep"))
        .filter_map(|l| {
            // Text lines may carry ANSI colours between key and value.
            let mut plain = String::with_capacity(l.len());
            let mut chars = l.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    chars.by_ref().find(|c| c.is_ascii_alphabetic());
                } else {
                    plain.push(c);
                }
            }
            let at = plain.find("trials_cancelled")? + "trials_cancelled".len();
            let digits: String = plain[at..]
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<i64>().ok()
        })
        .sum();
    assert_eq!(logged, 12, "every sweep together moved each trial once");
    assert!(
        requested <= 12,
        "the requested sweeps' reports: {reports:?}"
    );
    let mut per_subscription: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        if let Some(EventData::SubscriptionCancelled(c)) = envelope(e).map(|e| e.data) {
            *per_subscription
                .entry(c.subscription_id.to_string())
                .or_insert(0) += 1;
        }
    }
    assert_eq!(per_subscription.len(), 12, "every expired trial cancelled");
    assert!(
        per_subscription.values().all(|n| *n == 1),
        "one event per subscription: {per_subscription:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refused_after_its_logout_and_after_a_password_change_and_a_demotion_acts_at_once()
 {
    let Some(url) = amqp_url() else { return };
    let Some((base, db)) = app(|_| {}).await else {
        return;
    };
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let client = Client::new();
    let address = format!("tokens-{}@example.com", Uuid::new_v4().simple());
    let first = signed_up(&client, &base, &mut emails, &address).await;
    let second = log_in(&client, &base, &address, PASSWORD).await;
    let me = |token: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}/authentication/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        (me(first.clone()).await, me(second.clone()).await),
        (200, 200)
    );

    // Logout ends its own session only.
    let out = client
        .post(format!("{base}/authentication/logout"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 200);
    assert_eq!(
        (me(first.clone()).await, me(second.clone()).await),
        (401, 200)
    );

    // A password change ends every earlier session and answers a new one.
    let (status, changed) = json(
        client
            .post(format!("{base}/users/me/change-password"))
            .bearer_auth(&second)
            .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let third = changed["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        (me(first).await, me(second).await, me(third.clone()).await),
        (401, 401, 200)
    );

    // An admin demoted in the store loses admin routes on the next request.
    let store = store(&db);
    let email = Email::parse(&address).unwrap();
    store
        .set_role(&email, Role::Admin, Utc::now())
        .await
        .unwrap();
    let users = || {
        client
            .get(format!("{base}/users"))
            .bearer_auth(&third)
            .send()
    };
    assert_eq!(users().await.unwrap().status().as_u16(), 200);
    store
        .set_role(&email, Role::User, Utc::now())
        .await
        .unwrap();
    assert_eq!(users().await.unwrap().status().as_u16(), 403);
}
