//! The PostgreSQL identity store and the whole account flow on real
//! PostgreSQL, RabbitMQ and Redis; each test on a database of its own.

use std::{process::Command, sync::Arc, time::Duration};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use smap_identity::{
    adapters::{
        bus::topology::EVENTS_EXCHANGE,
        memory::ManualClock,
        postgres::{self, PgIdentityStore},
    },
    app::{config::EventDelivery, wiring::Adapters},
    domain::{
        account::{AccountStatus, OtpChallenge, PasswordHash, Role, User},
        email_address::Email,
        events::{EventData, EventEnvelope},
        locale::Locale,
        otp::OtpCode,
    },
    ports::{IdentityStore, PublishError, StoreError},
};
use uuid::Uuid;

use crate::{
    helpers::{PASSWORD, Remote},
    servers::{Probe, body, fresh_database, real_settings, run_app},
};

/// An unverified account with an OTP, as the store tests write them.
pub fn user(email: &str) -> User {
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    User {
        id: Uuid::new_v4(),
        email: Email::parse(email).unwrap(),
        password_hash: PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        full_name: None,
        locale: Locale::Vi,
        role: Role::User,
        status: AccountStatus::Unverified,
        otp: Some(OtpChallenge::new(OtpCode::parse("123456").unwrap(), now)),
        failed_logins: 0,
        login_blocked_until: None,
        created_at: now,
        updated_at: now,
    }
}

async fn store() -> Option<PgIdentityStore> {
    let url = fresh_database().await?;
    let pool = postgres::pool(&url, 8).unwrap();
    postgres::migrate(&pool).await.unwrap();
    Some(PgIdentityStore::new(pool))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_identity_rules() {
    let Some(store) = store().await else { return };
    let ann = user("Ann@Example.com");

    store
        .insert_user_then(&ann, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    let twin = store
        .insert_user_then(&user("ann@example.com"), Box::pin(async { Ok(()) }))
        .await;
    let rolled_back = store
        .insert_user_then(
            &user("bob@example.com"),
            Box::pin(async { Err(PublishError::Nacked) }),
        )
        .await;
    let found = store
        .user_by_email(&Email::parse("ANN@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let bob = store
        .user_by_email(&Email::parse("bob@example.com").unwrap())
        .await
        .unwrap();

    assert!(matches!(twin, Err(StoreError::EmailTaken)), "{twin:?}");
    assert!(matches!(
        rolled_back,
        Err(StoreError::RolledBack(PublishError::Nacked))
    ));
    assert_eq!(found, ann, "stored and read back field for field");
    assert!(bob.is_none(), "the failed hook left no row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_identity_contract_under_concurrency() {
    let Some(store) = store().await else { return };
    smap_identity::ports::suites::identity_store::run_all(Arc::new(store), "pg").await;
}

/// A real-server app on a fresh database; `customize` may swap adapters.
pub async fn app(customize: impl FnOnce(&mut Adapters)) -> Option<(String, String)> {
    app_delivering(EventDelivery::Outbox, customize).await
}

/// An app on a fresh database with the given `EVENT_DELIVERY`.
pub async fn app_delivering(
    delivery: EventDelivery,
    customize: impl FnOnce(&mut Adapters),
) -> Option<(String, String)> {
    let mut settings = real_settings()?;
    settings.event_delivery = delivery;
    settings.database_url = Some(SecretString::from(fresh_database().await?));
    let mut adapters = Adapters::from_settings(&settings).await.unwrap();
    assert!(
        adapters.summary().contains("identity_store=postgres"),
        "{}",
        adapters.summary()
    );
    customize(&mut adapters);
    let (base, ..) = run_app(&settings, adapters);
    Some((
        base,
        settings.database_url.unwrap().expose_secret().to_owned(),
    ))
}

fn envelope(d: &lapin::message::Delivery) -> Option<EventEnvelope> {
    EventEnvelope::from_json(&d.data).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_account_flow_on_postgres_and_rabbitmq_publishes_each_event() {
    let Some(url) = crate::servers::amqp_url() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let c = clock.clone();
    let Some((base, _)) = app(move |a| a.clock = c).await else {
        return;
    };
    let api = Remote::new(&base);
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    #[cfg(feature = "legacy-fanout")]
    let mut legacy = Probe::bind(
        &url,
        smap_identity::adapters::bus::topology::LEGACY_EXCHANGE,
        "",
    )
    .await;
    let mut subs = Probe::bind(&url, EVENTS_EXCHANGE, "subscription.#").await;
    let address = format!("flow-{}@example.com", Uuid::new_v4().simple());

    // Register: the verification e-mail reaches the topic exchange and, while
    // dual-publishing, the legacy fanout under the same message id.
    let (status, registered) = api.register_in(&address, PASSWORD, "vi").await;
    assert_eq!(status, 201, "{registered}");
    let user_id = registered["data"]["id"].as_str().unwrap().to_owned();
    let mine = |d: &lapin::message::Delivery| {
        envelope(d).is_some_and(|e| matches!(&e.data, EventData::EmailVerificationRequested(p) if p.user_id.to_string() == user_id))
    };
    let email = emails.collect(Duration::from_secs(5), 1, mine).await;
    let envelope_in = envelope(&email[0]).unwrap();
    let EventData::EmailVerificationRequested(p) = envelope_in.data else {
        unreachable!()
    };
    #[cfg(feature = "legacy-fanout")]
    {
        use crate::servers::message_id;
        let id = message_id(&email[0]);
        let old = legacy
            .collect(Duration::from_secs(5), 1, |d| message_id(d) == id)
            .await;
        assert_eq!(old.len(), 1, "the legacy copy");
        assert_eq!(body(&old[0])["Recipient"], address.as_str());
    }

    // Verify with the OTP from the message: subscription.created.
    let (verified, _) = api.verify_otp(&address, p.otp_code.as_str()).await;
    assert_eq!(verified, 200);
    let of_user =
        |d: &lapin::message::Delivery| body(d)["payload"]["data"]["user_id"] == user_id.as_str();
    let created = subs.collect(Duration::from_secs(5), 1, of_user).await;
    let created = body(&created[0]);
    assert_eq!(created["payload"]["routing_key"], "subscription.created");
    assert_eq!(created["payload"]["data"]["status"], "trialing");
    assert_eq!(
        created["payload"]["idempotency_key"],
        created["payload"]["data"]["subscription_id"]
    );

    // Log in, cancel: subscription.cancelled.
    let token = api.token(&address).await;
    let sub_id = created["payload"]["data"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel_path = format!("/subscriptions/{sub_id}/cancel");
    let (cancel, _) = api.post(&cancel_path, json!(null), Some(&token)).await;
    assert_eq!(cancel, 200);
    let cancelled = subs.collect(Duration::from_secs(5), 1, of_user).await;
    let cancelled = body(&cancelled[0]);
    assert_eq!(
        cancelled["payload"]["routing_key"],
        "subscription.cancelled"
    );
    assert_eq!(
        cancelled["payload"]["data"]["cancellation_reason"],
        "user_requested"
    );
    assert_eq!(cancelled["payload"]["data"]["previous_status"], "trialing");
    assert!(cancelled["payload"]["data"]["effective_until"].is_string());
    let (_, me) = api.get("/subscriptions/me", Some(&token)).await;
    assert_eq!(me["data"]["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_direct_delivery_a_registration_whose_event_cannot_be_published_leaves_no_row_and_a_retry_succeeds()
 {
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::helpers::Switchable;

    let down = Arc::new(AtomicBool::new(true));
    let switch = down.clone();
    let Some((base, db)) = app_delivering(EventDelivery::Direct, move |a| {
        a.publisher = Arc::new(Switchable {
            inner: a.publisher.clone(),
            down: switch,
        });
    })
    .await
    else {
        return;
    };
    let api = Remote::new(&base);

    let (status, answer) = api.register("retry@example.com", PASSWORD).await;
    let pool = postgres::pool(&db, 1).unwrap();
    let rows = PgIdentityStore::new(pool.clone())
        .list_users(0, 10)
        .await
        .unwrap()
        .1;
    down.store(false, Ordering::SeqCst);
    let (retry, _) = api.register("retry@example.com", PASSWORD).await;
    let after = PgIdentityStore::new(pool)
        .list_users(0, 10)
        .await
        .unwrap()
        .1;

    assert_eq!(status, 503, "{answer}");
    assert_eq!(rows, 0, "the transaction rolled back");
    assert_eq!(retry, 201);
    assert_eq!(after, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registrations_of_one_email_at_once_leave_one_row() {
    let Some((base, db)) = app(|_| {}).await else {
        return;
    };
    let api = Remote::new(&base);
    let register = || api.register("race@example.com", PASSWORD);

    let ((a, _), (b, _)) = tokio::join!(register(), register());

    let mut statuses = [a, b];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let pool = postgres::pool(&db, 1).unwrap();
    assert_eq!(
        PgIdentityStore::new(pool)
            .list_users(0, 10)
            .await
            .unwrap()
            .1,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_migrates_and_grants_admin() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_smap-identity");
    let run = |args: &[&str], url: Option<&str>| {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "error");
        if let Some(url) = url {
            cmd.env("DATABASE_URL", url);
        }
        cmd.output().unwrap()
    };

    let first = run(&["migrate"], Some(&db));
    let second = run(&["migrate"], Some(&db));
    let pool = postgres::pool(&db, 1).unwrap();
    let store = PgIdentityStore::new(pool);
    let u = user("boss@example.com");
    store
        .insert_user_then(&u, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    let granted = run(&["admin", "grant", "boss@example.com"], Some(&db));
    let unknown = run(&["admin", "grant", "nobody@example.com"], Some(&db));
    let no_db = run(&["migrate"], None);

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("2026"),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    assert!(String::from_utf8_lossy(&second.stdout).contains("none pending"));
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    assert_eq!(
        store.user_by_id(u.id).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert!(!unknown.status.success());
    assert!(!no_db.status.success());
    assert!(String::from_utf8_lossy(&no_db.stderr).contains("DATABASE_URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_payment_failure_and_expiry_publish_their_events_on_the_real_broker() {
    let Some(url) = crate::servers::amqp_url() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let c = clock.clone();
    let identity = Arc::new(std::sync::Mutex::new(None::<Arc<dyn IdentityStore>>));
    let keep = identity.clone();
    let Some((base, _)) = app(move |a| {
        a.clock = c;
        *keep.lock().unwrap() = Some(a.identity.clone());
    })
    .await
    else {
        return;
    };
    let store = identity.lock().unwrap().clone().unwrap();
    let api = Remote::new(&base);
    let mut subs = Probe::bind(&url, EVENTS_EXCHANGE, "subscription.#").await;
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let key = smap_identity::app::config::Settings::for_tests()
        .internal_key
        .expose_secret()
        .to_owned();

    // Two verified users: one upgrades, one stays on the trial.
    let mut tokens = Vec::new();
    let mut user_ids = Vec::new();
    for n in 0..2 {
        let address = format!("life{n}-{}@example.com", Uuid::new_v4().simple());
        let (id, token) = api.register_verified_user(&address, &mut emails).await;
        tokens.push(token);
        user_ids.push(id);
    }
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    store
        .insert_plan(&smap_identity::domain::billing::Plan {
            id: Uuid::new_v4(),
            code: smap_identity::domain::billing::PlanCode::parse("pro").unwrap(),
            name: "Pro".into(),
            description: None,
            price_minor: 1900,
            currency: "USD".into(),
            billing_cycle: smap_identity::domain::billing::BillingCycle::Monthly,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let (_, me) = api.get("/subscriptions/me", Some(&tokens[0])).await;
    let paid = me["data"]["id"].as_str().unwrap().to_owned();
    let of = |user: &str| {
        let user = user.to_owned();
        move |d: &lapin::message::Delivery| body(d)["payload"]["data"]["user_id"] == user.as_str()
    };
    // Take the two subscription.created of these users off the queue first.
    let created = subs
        .collect(Duration::from_secs(5), 2, |d| {
            let e = body(d);
            e["payload"]["routing_key"] == "subscription.created"
                && user_ids
                    .iter()
                    .any(|u| e["payload"]["data"]["user_id"] == u.as_str())
        })
        .await;
    assert_eq!(created.len(), 2);

    let upgrade = format!("/subscriptions/{paid}/upgrade");
    let (upgraded, _) = api
        .post(&upgrade, json!({"plan_code": "pro"}), Some(&tokens[0]))
        .await;
    assert_eq!(upgraded, 200);
    let e = body(
        &subs
            .collect(Duration::from_secs(5), 1, of(&user_ids[0]))
            .await[0],
    );
    assert_eq!(e["payload"]["routing_key"], "subscription.status_changed");
    assert_eq!(e["payload"]["data"]["transition_reason"], "upgraded");
    assert_eq!(e["payload"]["data"]["plan_code"], "pro");
    assert!(e["payload"]["data"]["subscription_end"].is_string());

    let payment_failed = format!("/internal/subscriptions/{paid}/payment-failed");
    let (failed, _) = api.post_internal(&payment_failed, &key).await;
    assert_eq!(failed, 200);
    let e = body(
        &subs
            .collect(Duration::from_secs(5), 1, of(&user_ids[0]))
            .await[0],
    );
    assert_eq!(
        (
            e["payload"]["data"]["previous_status"].as_str(),
            e["payload"]["data"]["new_status"].as_str()
        ),
        (Some("active"), Some("past_due"))
    );
    assert_eq!(e["payload"]["data"]["transition_reason"], "payment_failed");

    clock.advance(chrono::Duration::days(40));
    let (status, sweep) = api
        .post_internal("/internal/subscriptions/expire-due", &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        sweep["data"],
        json!({"trials_cancelled": 1, "subscriptions_ended": 1})
    );
    let (a, b) = (of(&user_ids[0]), of(&user_ids[1]));
    let both: Vec<serde_json::Value> = subs
        .collect(Duration::from_secs(5), 2, |d| a(d) || b(d))
        .await
        .iter()
        .map(body)
        .collect();
    let for_user = |u: &str| {
        both.iter()
            .find(|e| e["payload"]["data"]["user_id"] == u)
            .cloned()
            .unwrap_or_else(|| panic!("no event for {u}: {both:?}"))
    };
    let ended = for_user(&user_ids[0]);
    assert_eq!(
        ended["payload"]["data"]["transition_reason"],
        "subscription_ended"
    );
    assert_eq!(ended["payload"]["data"]["new_status"], "expired");
    let expired = for_user(&user_ids[1]);
    assert_eq!(expired["payload"]["routing_key"], "subscription.cancelled");
    assert_eq!(
        expired["payload"]["data"]["cancellation_reason"],
        "trial_expired"
    );
    assert!(expired["payload"]["data"].get("admin_user_id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_direct_delivery_and_rabbitmq_stopped_registration_answers_503_leaves_no_row_and_works_once_it_is_back()
 {
    use crate::servers::{free_port, services};
    let Some(mut settings) = real_settings() else {
        return;
    };
    // The seed's behaviour, kept under `EVENT_DELIVERY=direct`; the outbox
    // answers 201 instead (`real_outbox.rs`).
    settings.event_delivery = EventDelivery::Direct;
    let Some(db) = fresh_database().await else {
        return;
    };
    let dir = std::env::temp_dir()
        .join(format!("smap-reg-rabbit-{}", Uuid::new_v4().simple()))
        .to_string_lossy()
        .into_owned();
    let (port, dist) = (free_port(), free_port());
    let start: Vec<String> = ["rabbitmq-start", &dir, &port.to_string(), &dist.to_string()]
        .map(String::from)
        .to_vec();
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    services(&start);
    settings.amqp_url = Some(SecretString::from(format!(
        "amqp://guest:guest@127.0.0.1:{port}/%2f"
    )));
    settings.database_url = Some(SecretString::from(db.clone()));
    let (base, ..) = run_app(&settings, Adapters::from_settings(&settings).await.unwrap());
    let api = Remote::new(&base);
    let register = || api.register("outage@example.com", PASSWORD);
    let rows = || {
        let db = db.clone();
        async move {
            PgIdentityStore::new(postgres::pool(&db, 1).unwrap())
                .list_users(0, 10)
                .await
                .unwrap()
                .1
        }
    };

    services(&["rabbitmq-stop", &dir, &port.to_string()]);
    let (status, answer) = register().await;
    let after_outage = rows().await;
    services(&start);
    let back = std::time::Instant::now();
    let mut retried = 0;
    while back.elapsed() < Duration::from_secs(15) {
        retried = register().await.0;
        if retried == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    services(&["rabbitmq-stop", &dir, &port.to_string()]);

    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error_code"], 50300);
    assert_eq!(after_outage, 0, "no user remained");
    assert_eq!(
        retried, 201,
        "registration works again once the broker is back"
    );
    assert_eq!(rows().await, 1);
}

/// `DATABASE_URL` in libpq's multi-host form (DESIGN §10, clustered
/// servers): a host that refuses connections listed first, the live one
/// second, `target_session_attrs=read-write` — the pool, the migrations,
/// the outbox's LISTEN connection and the relay all reach the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_host_database_url_skips_a_dead_host_for_the_live_one() {
    let Some(mut settings) = real_settings() else {
        return;
    };
    let Some(db) = fresh_database().await else {
        return;
    };
    let Some(url) = crate::servers::amqp_url() else {
        return;
    };
    let (scheme_and_user, live) = db.split_once('@').expect("user@host in DATABASE_URL");
    let dead = crate::servers::free_port();
    let multi =
        format!("{scheme_and_user}@127.0.0.1:{dead},{live}?target_session_attrs=read-write");
    settings.database_url = Some(SecretString::from(multi));
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    assert!(
        adapters.summary().contains("identity_store=postgres"),
        "{}",
        adapters.summary()
    );
    let (base, ..) = run_app(&settings, adapters);
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let address = format!("multi-{}@example.com", Uuid::new_v4().simple());

    let (status, _) = Remote::new(&base).register(&address, PASSWORD).await;

    assert_eq!(status, 201);
    assert!(
        crate::servers::emails_in(&db).await.contains(&address),
        "stored on the live host"
    );
    let events = emails
        .collect(Duration::from_secs(10), 1, |d| {
            body(d)["payload"]["data"]["recipient"] == address.as_str()
        })
        .await;
    assert_eq!(events.len(), 1, "the relay published its outbox row");
}
