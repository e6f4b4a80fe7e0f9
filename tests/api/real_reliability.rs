//! Faults under load, counted: registrations streaming through a RabbitMQ
//! outage, e-mails through an SMTP outage, and what every accepted request
//! left behind. Each test runs on servers or a vhost of its own; the figures
//! it prints are in docs/reliability.md.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use lapin::{Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable};
use secrecy::{ExposeSecret, SecretString};
use smap_identity::{
    adapters::bus::topology::{EMAIL_ERRORS_QUEUE, EVENTS_EXCHANGE},
    app::{config::EventDelivery, wiring::Adapters},
};
use uuid::Uuid;

use smap_identity::test_support::amqp::{bind_queue, drain_queue};

use crate::{
    helpers::{PASSWORD, Remote},
    real_smtp::Sink,
    servers::{
        Vhost, amqp_url, emails_in, free_port, fresh_database, real_settings, run_app, services,
    },
};

const PROBE_QUEUE: &str = "reliability.probe";

fn scratch(name: &str) -> String {
    std::env::temp_dir()
        .join(format!(
            "smap-reliability-{name}-{}",
            Uuid::new_v4().simple()
        ))
        .to_string_lossy()
        .into_owned()
}

/// A durable queue bound to `email.#`: it keeps what reached the broker
/// across a restart, to be drained at the end.
async fn declare_probe(url: &str) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    bind_queue(&channel, PROBE_QUEUE, durable, EVENTS_EXCHANGE, "email.#")
        .await
        .unwrap();
    let _ = connection.close(200, "ok".into()).await;
}

/// Every message left in `queue`, as JSON.
async fn drain(url: &str, queue: &str) -> Vec<serde_json::Value> {
    let taken = drain_queue(url, queue).await.expect("the probe queue");
    let json = |d: &lapin::message::Delivery| serde_json::from_slice(&d.data).unwrap_or_default();
    taken.iter().map(json).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_streaming_through_a_rabbitmq_outage_lose_nothing() {
    stream_through_a_rabbitmq_outage(EventDelivery::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_outbox_registrations_streaming_through_a_rabbitmq_outage_are_all_accepted_and_lose_nothing()
 {
    stream_through_a_rabbitmq_outage(EventDelivery::Outbox).await;
}

/// Four clients register continuously while the broker stops for 3 s and
/// returns. `direct`: 201 or 503, every 201 with its user and event, no 503
/// with a user. `outbox`: every request 201, every event on the broker
/// once it is back.
async fn stream_through_a_rabbitmq_outage(delivery: EventDelivery) {
    let Some(mut settings) = real_settings() else {
        return;
    };
    settings.event_delivery = delivery;
    let Some(db) = fresh_database().await else {
        return;
    };
    let dir = scratch("rabbit");
    let (port, dist) = (free_port(), free_port());
    let start = ["rabbitmq-start", &dir, &port.to_string(), &dist.to_string()].map(String::from);
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    let stop = ["rabbitmq-stop", &dir, &port.to_string()].map(String::from);
    let stop: Vec<&str> = stop.iter().map(String::as_str).collect();
    services(&start);
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    settings.amqp_url = Some(SecretString::from(url.clone()));
    settings.database_url = Some(SecretString::from(db.clone()));
    let (base, ..) = run_app(&settings, Adapters::from_settings(&settings).await.unwrap());
    declare_probe(&url).await;

    // Four clients register continuously, each address once.
    // Address → (status, when the answer came).
    let outcomes: Arc<Mutex<BTreeMap<String, (u16, Instant)>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (base, outcomes, running) = (base.clone(), outcomes.clone(), running.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let api = Remote::with_client(&base, http);
                let mut n = 0;
                while running.load(Ordering::SeqCst) {
                    n += 1;
                    let email = format!("stream-{client}-{n}@example.com");
                    // No answer (the request timed out) counts as 0.
                    let status = api.try_register(&email, PASSWORD).await.unwrap_or(0);
                    outcomes
                        .lock()
                        .unwrap()
                        .insert(email, (status, Instant::now()));
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_outage = outcomes.lock().unwrap().len();
    services(&stop);
    tokio::time::sleep(Duration::from_secs(3)).await;
    services(&start);
    let back = Instant::now();
    // Recovered: the first 201 answered after the broker was back.
    let recovered_after = loop {
        let first_ok = outcomes
            .lock()
            .unwrap()
            .values()
            .filter(|(status, at)| *status == 201 && *at > back)
            .map(|(_, at)| *at - back)
            .min();
        if let Some(after) = first_ok {
            break after;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no recovery in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    let outcomes: BTreeMap<String, u16> = outcomes
        .lock()
        .unwrap()
        .iter()
        .map(|(email, (status, _))| (email.clone(), *status))
        .collect();
    let users = emails_in(&db).await;
    let wanted = outcomes.values().filter(|s| **s == 201).count();
    let mut events: BTreeSet<String> = BTreeSet::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut messages = 0;
    // The outbox delivers after the request: wait (bounded) for the relay.
    let patience = Instant::now();
    loop {
        let batch = drain(&url, PROBE_QUEUE).await;
        messages += batch.len();
        ids.extend(
            batch
                .iter()
                .filter_map(|e| e["event_id"].as_str().map(str::to_owned)),
        );
        events.extend(batch.iter().filter_map(|e| {
            e["payload"]["data"]["recipient"]
                .as_str()
                .map(str::to_owned)
        }));
        if events.len() >= wanted || patience.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained_after = patience.elapsed();
    services(&stop);

    let accepted: Vec<&String> = outcomes
        .iter()
        .filter(|(_, s)| **s == 201)
        .map(|(e, _)| e)
        .collect();
    let refused: Vec<&String> = outcomes
        .iter()
        .filter(|(_, s)| **s == 503)
        .map(|(e, _)| e)
        .collect();
    let other: Vec<(&String, &u16)> = outcomes
        .iter()
        .filter(|(_, s)| **s != 201 && **s != 503)
        .collect();
    let lost_users = accepted
        .iter()
        .filter(|e| !users.contains(e.as_str()))
        .count();
    let lost_events = accepted
        .iter()
        .filter(|e| !events.contains(e.as_str()))
        .count();
    let stray_users = refused
        .iter()
        .filter(|e| users.contains(e.as_str()))
        .count();
    eprintln!(
        "broker outage under load ({}): {} registrations ({before_outage} before the outage): \
         {} accepted (201), {} refused (503), {} other; \
         accepted without user {lost_users}, without event {lost_events}; refused with a user {stray_users}; \
         {messages} messages with {} event ids; first 201 {recovered_after:?} after the broker was back; \
         events all on the broker {drained_after:?} after the traffic stopped",
        delivery.as_str(),
        outcomes.len(),
        accepted.len(),
        refused.len(),
        other.len(),
        ids.len(),
    );
    assert!(other.is_empty(), "only 201 or 503: {other:?}");
    match delivery {
        EventDelivery::Direct => assert!(!refused.is_empty(), "the outage was felt"),
        EventDelivery::Outbox => {
            assert!(refused.is_empty(), "the outbox accepts during the outage");
            // A publish whose confirm the stopping broker never sent is
            // published again with its id (at-least-once, DESIGN §10):
            // one event id per registration, never two.
            assert_eq!(ids.len(), accepted.len(), "one event id per registration");
        }
    }
    assert!(
        accepted.len() > before_outage,
        "registrations went on after the outage"
    );
    assert_eq!(lost_users, 0, "every 201 left its user");
    assert_eq!(lost_events, 0, "every 201 put its event on the broker");
    assert_eq!(stray_users, 0, "no 503 left a user");
    assert_eq!(users.len(), accepted.len(), "no user without a 201");
    assert!(
        recovered_after < Duration::from_secs(10),
        "recovered in {recovered_after:?}"
    );
}

/// Maildir files the sink wrote.
fn delivered(maildir: &Path) -> usize {
    std::fs::read_dir(maildir.join("new"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_smtp_outage_every_email_is_delivered_or_dead_lettered_once() {
    let Some(base_url) = amqp_url() else { return };
    let Some(mut settings) = real_settings() else {
        return;
    };
    // A vhost of its own: this test runs the consumers of the standard queues.
    let vhost = Vhost::new(&base_url, "reliability");
    let url = vhost.url.clone();
    let maildir = PathBuf::from(scratch("maildir"));
    let smtp_port = free_port();
    let sink = Sink::start(smtp_port, &maildir).expect("aiosmtpd starts");
    settings.amqp_url = Some(SecretString::from(url.clone()));
    settings.start_consumers = true;
    #[cfg(feature = "legacy-fanout")]
    {
        settings.enable_dual_publish = false;
    }
    settings.smtp = Some(smap_identity::adapters::mail::SmtpConfig {
        host: "127.0.0.1".into(),
        port: smtp_port,
        tls: smap_identity::adapters::mail::SmtpTls::None,
        username: None,
        password: None,
        from: "SMAP <no-reply@smap.test>".into(),
        timeout: std::time::Duration::from_secs(10),
    });
    let mut adapters = Adapters::from_settings(&settings).await.unwrap();
    adapters.use_configured_mailer(&settings).unwrap();
    let (base, handle, running) = run_app(&settings, adapters);
    let api = Remote::new(&base);
    let register = async |email: String| api.register(&email, PASSWORD).await.0;

    // 10 with the sink up, 10 with it down (each fails its 4 tries over 7 s),
    // 10 once it is back.
    let mut published = 0;
    for n in 0..10 {
        assert_eq!(register(format!("smtp-up-{n}@example.com")).await, 201);
        published += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered(&maildir) < 10 {
        assert!(Instant::now() < deadline, "the first 10 were not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(sink);
    for n in 0..10 {
        assert_eq!(register(format!("smtp-down-{n}@example.com")).await, 201);
        published += 1;
    }
    // Let every try of the outage's e-mails fail (1 + 2 + 4 s of backoff).
    tokio::time::sleep(Duration::from_secs(9)).await;
    let sink = Sink::start(smtp_port, &maildir).expect("aiosmtpd restarts");
    for n in 0..10 {
        assert_eq!(register(format!("smtp-back-{n}@example.com")).await, 201);
        published += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (sent, dead) = loop {
        let sent = delivered(&maildir);
        let dead = drain_count(&url, EMAIL_ERRORS_QUEUE).await;
        if sent + dead >= published || Instant::now() > deadline {
            break (sent, dead);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (sent, dead) = (
        delivered(&maildir).max(sent),
        drain_count(&url, EMAIL_ERRORS_QUEUE).await.max(dead),
    );
    handle.cancel();
    let _ = running.await;
    drop(sink);
    drop(vhost);
    eprintln!(
        "SMTP outage: {published} e-mail events published, {sent} delivered, {dead} dead-lettered"
    );
    assert_eq!(
        sent + dead,
        published,
        "delivered + dead-lettered = published"
    );
    assert!(dead >= 1, "the outage dead-lettered some");
    assert!(sent >= 20, "mail before and after the outage went out");
}

/// How many messages `queue` holds (without taking them).
async fn drain_count(url: &str, queue: &str) -> usize {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "ok".into()).await;
    declared.message_count() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_outage_answers_503_fast_writes_nothing_and_recovers() {
    let Some(mut settings) = real_settings() else {
        return;
    };
    if fresh_database().await.is_none() {
        return;
    }
    let dir = scratch("postgres");
    let port = free_port();
    services(&["postgres-start", &dir, &port.to_string()]);
    let db = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    settings.database_url = Some(SecretString::from(db.clone()));
    let (base, ..) = run_app(&settings, Adapters::from_settings(&settings).await.unwrap());
    let api = Remote::new(&base);
    let register = async |email: String| {
        let started = Instant::now();
        let (status, body) = api.register(&email, PASSWORD).await;
        (status, body, started.elapsed())
    };
    assert_eq!(register("pg-before@example.com".into()).await.0, 201);

    services(&["postgres-stop", &dir]);
    let mut during = Vec::new();
    for n in 0..10 {
        during.push(register(format!("pg-during-{n}@example.com")).await);
    }
    let (login_during, _) = api.log_in("pg-before@example.com", PASSWORD).await;
    let health = api.get_status("/health/database").await;
    services(&["postgres-start", &dir, &port.to_string()]);
    let back = Instant::now();
    let recovered = loop {
        let (status, ..) = register(format!(
            "pg-after-{}@example.com",
            back.elapsed().as_millis()
        ))
        .await;
        if status == 201 {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no recovery: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let users = emails_in(&db).await;
    services(&["postgres-stop", &dir]);

    let slowest = during.iter().map(|(_, _, t)| *t).max().unwrap();
    eprintln!(
        "PostgreSQL outage: {} registrations during it → {:?}; slowest answer {slowest:?}; \
         login {login_during}; /health/database {health}; recovered {recovered:?} after the restart; users {}",
        during.len(),
        during.iter().map(|(s, ..)| *s).collect::<Vec<_>>(),
        users.len()
    );
    for (status, body, _) in &during {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error_code"], 50300, "{body}");
    }
    assert!(slowest < Duration::from_secs(6), "fails fast: {slowest:?}");
    assert_eq!(login_during, 503);
    assert_eq!(health, 503);
    assert!(
        !users.iter().any(|u| u.starts_with("pg-during-")),
        "no partial writes: {users:?}"
    );
    assert!(users.contains("pg-before@example.com"));
    assert!(
        recovered < Duration::from_secs(10),
        "recovered in {recovered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_accounts_keep_working_and_progress_answers_503_until_it_returns() {
    if crate::servers::redis().is_none() {
        return;
    }
    let dir = scratch("redis-accounts");
    let port = free_port();
    services(&["redis-start", &dir, &port.to_string()]);
    let mut settings = smap_identity::app::config::Settings::for_tests();
    settings.redis = Some(smap_identity::adapters::redis::RedisConfig {
        host: "127.0.0.1".into(),
        port,
        password: None,
        state_db: 1,
        sentinel: None,
    });
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    // Read the OTPs off the in-memory bus.
    let broker = adapters.memory_broker.clone().expect("in-memory bus");
    broker.declare_queue("test.otp");
    broker.bind("test.otp", EVENTS_EXCHANGE, "email.#").unwrap();
    let (base, ..) = run_app(&settings, adapters);
    let api = Remote::new(&base);
    let key = settings.internal_key.expose_secret().to_owned();
    let progress = async || {
        let started = Instant::now();
        let path = "/internal/projects/redis-down/progress";
        let (status, _) = api.post_internal(path, &key).await;
        (status, started.elapsed())
    };
    assert_eq!(progress().await.0, 201);

    services(&["redis-stop", &dir]);
    let email = "redis-down@example.com";
    let (registered, _) = api.register(email, PASSWORD).await;
    // The outbox relay publishes after the commit: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut message = broker.try_take("test.otp").unwrap();
    while message.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        message = broker.try_take("test.otp").unwrap();
    }
    let otp = message
        .map(|m| {
            let event: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
            event["payload"]["data"]["otp_code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .expect("the verification event");
    let (verified, _) = api.verify_otp(email, &otp).await;
    let (logged_in, _) = api.log_in(email, PASSWORD).await;
    let (progress_down, waited) = progress().await;
    let health = api.get_status("/health/redis").await;
    services(&["redis-start", &dir, &port.to_string()]);
    let back = Instant::now();
    let recovered = loop {
        if progress().await.0 == 201 {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "progress did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    services(&["redis-stop", &dir]);
    eprintln!(
        "Redis outage: register {registered}, verify {verified}, login {logged_in}; \
         progress {progress_down} after {waited:?}; /health/redis {health}; progress back {recovered:?} after Redis"
    );
    assert_eq!((registered, verified, logged_in), (201, 200, 200));
    assert_eq!(progress_down, 503);
    assert!(
        waited < Duration::from_secs(10),
        "within the retry bound: {waited:?}"
    );
    assert_eq!(health, 503);
    assert!(recovered < Duration::from_secs(15), "{recovered:?}");
}

/// (To, Message-ID) of every e-mail the sink wrote.
fn mails(maildir: &Path) -> Vec<(String, String)> {
    let header = |mail: &str, name: &str| {
        mail.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    std::fs::read_dir(maildir.join("new"))
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .map(|mail| (header(&mail, "to:"), header(&mail, "message-id:")))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_in_time_and_loses_or_doubles_nothing() {
    let Some(base_url) = amqp_url() else { return };
    let Some(redis) = crate::servers::redis() else {
        return;
    };
    let Some(db) = fresh_database().await else {
        return;
    };
    let vhost = Vhost::new(&base_url, "shutdown");
    let url = vhost.url.clone();
    let maildir = PathBuf::from(scratch("shutdown-mail"));
    let smtp_port = free_port();
    let _sink = Sink::start(smtp_port, &maildir).expect("aiosmtpd starts");
    let (redis_port, smtp_port_text) = (redis.port.to_string(), smtp_port.to_string());
    let env = [
        ("AMQP_URL", url.as_str()),
        ("DATABASE_URL", db.as_str()),
        ("REDIS_HOST", redis.host.as_str()),
        ("REDIS_PORT", redis_port.as_str()),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", smtp_port_text.as_str()),
        ("SMTP_TLS", "none"),
        ("ENABLE_DUAL_PUBLISH", "false"),
        ("CONSUME_LEGACY_QUEUE", "false"),
    ];
    let service = crate::process::Service::start(&env).await;

    let outcomes: Arc<Mutex<BTreeMap<String, u16>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (base, outcomes) = (service.base.clone(), outcomes.clone());
            tokio::spawn(async move {
                let api = Remote::new(&base);
                for n in 0.. {
                    let email = format!("term-{client}-{n}@example.com");
                    let answer = api.try_register(&email, PASSWORD).await;
                    // Refused connections: the server has stopped taking requests.
                    let Ok(status) = answer else { break };
                    outcomes.lock().unwrap().insert(email, status);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (took, _) = service.stop().await;
    for client in clients {
        client.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let accepted: BTreeSet<String> = outcomes
        .iter()
        .filter(|(_, s)| **s == 201)
        .map(|(e, _)| e.clone())
        .collect();
    let sent_before_restart = mails(&maildir).len();

    // What was queued and not yet sent goes out after a restart.
    let again = crate::process::Service::start(&env).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while mails(&maildir).len() < accepted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    again.stop().await;
    drop(vhost);

    let users = emails_in(&db).await;
    let sent = mails(&maildir);
    let recipients: Vec<&String> = sent.iter().map(|(to, _)| to).collect();
    let unique_ids: BTreeSet<&String> = sent.iter().map(|(_, id)| id).collect();
    let unanswered = outcomes.values().filter(|s| **s != 201).count();
    eprintln!(
        "SIGTERM under load: exited in {took:?}; {} registrations answered ({} × 201, {unanswered} other); \
         users {}; e-mails {} ({sent_before_restart} before the restart), distinct Message-IDs {}",
        outcomes.len(),
        accepted.len(),
        users.len(),
        sent.len(),
        unique_ids.len()
    );
    assert!(took < Duration::from_secs(10), "exited in {took:?}");
    assert!(accepted.len() > 10, "there was load");
    assert_eq!(unanswered, 0, "every answered request was a 201");
    assert_eq!(
        users, accepted,
        "every 201 has its user, and nothing else was written"
    );
    assert_eq!(unique_ids.len(), sent.len(), "no e-mail sent twice");
    for email in &accepted {
        assert_eq!(
            recipients
                .iter()
                .filter(|to| to.contains(email.as_str()))
                .count(),
            1,
            "{email}: exactly one e-mail"
        );
    }
}
