//! The transactional outbox (`EVENT_DELIVERY=outbox`, DESIGN §10) on real
//! PostgreSQL and a RabbitMQ node of the test's own that it stops and
//! restarts: requests succeed while the broker is down and every event goes
//! out once it returns, exactly once, in order per aggregate; two relays on
//! one database publish each row once; `direct` keeps the seed's 503.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use lapin::{
    Connection, ConnectionProperties,
    options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use smap_identity::{
    adapters::{bus::topology::EVENTS_EXCHANGE, memory::ManualClock, postgres},
    app::{config::EventDelivery, wiring::Adapters},
    ports::IdentityStore,
};

use crate::{
    helpers::{PASSWORD, Remote},
    servers::{Probe, amqp_url, body, free_port, fresh_database, real_settings, run_app, services},
};

/// A RabbitMQ node of this test's own, stopped on drop.
struct Node {
    dir: String,
    port: u16,
    dist: u16,
}

impl Node {
    fn start() -> Node {
        let dir = std::env::temp_dir()
            .join(format!("smap-outbox-{}", uuid::Uuid::new_v4().simple()))
            .to_string_lossy()
            .into_owned();
        let node = Node {
            dir,
            port: free_port(),
            dist: free_port(),
        };
        node.up();
        node
    }

    fn up(&self) {
        services(&[
            "rabbitmq-start",
            &self.dir,
            &self.port.to_string(),
            &self.dist.to_string(),
        ]);
    }

    fn down(&self) {
        services(&["rabbitmq-stop", &self.dir, &self.port.to_string()]);
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.down();
    }
}

/// A durable queue on `url` bound to `smap.events` with `pattern`: it keeps
/// what arrives across the node's restart.
async fn durable_probe(url: &str, queue: &str, pattern: &str) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("probe connects");
    let channel = connection.create_channel().await.expect("channel");
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .expect("probe queue");
    channel
        .queue_bind(
            queue.into(),
            EVENTS_EXCHANGE.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("probe binding");
    let _ = connection.close(200, "done".into()).await;
}

/// Takes messages from `queue` until `want` arrived or `wait` passed, then
/// keeps listening a moment longer so a duplicate would be seen too.
async fn take(url: &str, queue: &str, want: usize, wait: Duration) -> Vec<Value> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut grace: Option<Instant> = None;
    while Instant::now() < deadline && grace.is_none_or(|g| Instant::now() < g) {
        let Ok(connection) = Connection::connect(url, ConnectionProperties::default()).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let Ok(channel) = connection.create_channel().await else {
            continue;
        };
        loop {
            let got = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await;
            match got {
                Ok(Some(message)) => out.push(body(&message.delivery)),
                Ok(None) => break,
                Err(_) => break,
            }
        }
        let _ = connection.close(200, "done".into()).await;
        if out.len() >= want && grace.is_none() {
            grace = Some(Instant::now() + Duration::from_secs(3));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    out
}

fn data(event: &Value) -> &Value {
    &event["payload"]["data"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_requests_succeed_and_each_event_goes_out_once_in_order_after_it_returns()
 {
    if amqp_url().is_none() {
        return;
    }
    let Some(mut settings) = real_settings() else {
        return;
    };
    let Some(db) = fresh_database().await else {
        return;
    };
    let node = Node::start();
    settings.amqp_url = Some(SecretString::from(node.url()));
    settings.database_url = Some(SecretString::from(db.clone()));
    settings.event_delivery = EventDelivery::Outbox;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut adapters = Adapters::from_settings(&settings).await.expect("adapters");
    adapters.clock = clock.clone();
    let (base, handle, _task) = run_app(&settings, adapters);
    durable_probe(&node.url(), "outbox-probe-email", "email.#").await;
    durable_probe(&node.url(), "outbox-probe-subscription", "subscription.#").await;

    // An account with a subscription, while the broker is up.
    let owner = "owner@outbox.example";
    let api = Remote::new(&base);
    let (status, _) = api.register(owner, PASSWORD).await;
    assert_eq!(status, 201);
    let first = take(
        &node.url(),
        "outbox-probe-email",
        1,
        Duration::from_secs(20),
    )
    .await;
    let otp = data(&first[0])["otp_code"]
        .as_str()
        .expect("otp")
        .to_owned();
    let (status, _) = api.verify_otp(owner, &otp).await;
    assert_eq!(status, 200);
    let (_, login) = api.log_in(owner, PASSWORD).await;
    let token = login["data"]["token"].as_str().expect("token").to_owned();
    let created = take(
        &node.url(),
        "outbox-probe-subscription",
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(created.len(), 1, "subscription.created before the outage");
    let subscription = data(&created[0])["subscription_id"]
        .as_str()
        .expect("id")
        .to_owned();

    node.down();
    let started = Instant::now();
    let users: Vec<String> = (0..5).map(|i| format!("u{i}@outbox.example")).collect();
    for user in &users {
        let (status, answer) = api.register(user, PASSWORD).await;
        assert_eq!(
            status, 201,
            "registration while the broker is down: {answer}"
        );
    }
    // A second event of one aggregate (user u0): the re-send after the
    // cool-down must come out after the registration's.
    clock.advance(chrono::Duration::seconds(61));
    let (status, answer) = api
        .post(
            "/authentication/send-otp",
            json!({"email": users[0], "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, 200, "re-send while the broker is down: {answer}");
    let (status, answer) = api
        .post(
            &format!("/subscriptions/{subscription}/cancel"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(
        status, 200,
        "cancellation while the broker is down: {answer}"
    );
    let outage_answers = started.elapsed();
    let pending = postgres::PgIdentityStore::new(postgres::pool(&db, 1).expect("pool"))
        .outbox_backlog()
        .await
        .expect("backlog")
        .pending;
    assert_eq!(
        pending, 7,
        "5 registrations, 1 re-send and 1 cancellation wait"
    );

    node.up();
    let back = Instant::now();
    let emails = take(
        &node.url(),
        "outbox-probe-email",
        6,
        Duration::from_secs(90),
    )
    .await;
    let cancelled = take(
        &node.url(),
        "outbox-probe-subscription",
        1,
        Duration::from_secs(30),
    )
    .await;
    let delivered_after = back.elapsed();

    let mut per_user: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &emails {
        assert_eq!(e["payload"]["routing_key"], "email.verification.requested");
        per_user
            .entry(data(e)["recipient"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(e);
    }
    let ids: BTreeSet<&str> = emails
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), emails.len(), "no event published twice");
    for user in &users[1..] {
        assert_eq!(
            per_user.get(user).map(Vec::len),
            Some(1),
            "one e-mail for {user}"
        );
    }
    let u0 = per_user.get(&users[0]).expect("u0's e-mails");
    assert_eq!(u0.len(), 2, "registration and re-send for u0");
    assert!(
        u0[0]["timestamp"].as_str() < u0[1]["timestamp"].as_str(),
        "u0's events in the order written: {u0:?}"
    );
    assert_eq!(
        cancelled.len(),
        1,
        "one subscription.cancelled: {cancelled:?}"
    );
    assert_eq!(
        cancelled[0]["payload"]["routing_key"],
        "subscription.cancelled"
    );
    assert_eq!(
        data(&cancelled[0])["subscription_id"],
        subscription.as_str()
    );
    eprintln!(
        "outbox: 7 requests answered 2xx in {outage_answers:?} with the broker down; \
         {} e-mail events ({} ids) and {} cancellation delivered {delivered_after:?} after its return",
        emails.len(),
        ids.len(),
        cancelled.len()
    );

    // `direct` on the same stopped broker: the seed's 503, nothing stored.
    node.down();
    let mut direct = real_settings().expect("settings");
    direct.amqp_url = Some(SecretString::from(node.url()));
    direct.database_url = Some(SecretString::from(db.clone()));
    direct.event_delivery = EventDelivery::Direct;
    let adapters = Adapters::from_settings(&direct).await.expect("adapters");
    let (direct_base, direct_handle, _direct_task) = run_app(&direct, adapters);
    let (status, answer) = Remote::new(&direct_base)
        .register("direct@outbox.example", PASSWORD)
        .await;
    assert_eq!(
        status, 503,
        "direct delivery with the broker down: {answer}"
    );
    let stored = crate::servers::emails_in(&db).await;
    assert!(
        !stored.contains("direct@outbox.example"),
        "rolled back: {stored:?}"
    );
    direct_handle.cancel();
    handle.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_publish_each_row_once() {
    let Some(url) = amqp_url() else { return };
    let Some(settings) = real_settings() else {
        return;
    };
    let Some(db) = fresh_database().await else {
        return;
    };
    let mut settings = settings;
    settings.database_url = Some(SecretString::from(db));
    settings.event_delivery = EventDelivery::Outbox;
    let domain = format!("relays-{}.example", uuid::Uuid::new_v4().simple());
    let first = Adapters::from_settings(&settings).await.expect("adapters");
    let second = Adapters::from_settings(&settings).await.expect("adapters");
    // After the adapters: they declare the exchange (a fresh broker has none).
    let mut probe = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let (a, handle_a, _) = run_app(&settings, first);
    let (b, handle_b, _) = run_app(&settings, second);
    let n = 30;
    let requests = (0..n).map(|i| {
        let api = Remote::new(if i % 2 == 0 { &a } else { &b });
        let email = format!("r{i}@{domain}");
        async move { api.register(&email, PASSWORD).await.0 }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let suffix = format!("@{domain}");
    let ours = |d: &lapin::message::Delivery| {
        body(d)["payload"]["data"]["recipient"]
            .as_str()
            .is_some_and(|r| r.ends_with(&suffix))
    };
    let mut got = probe.collect(Duration::from_secs(30), n, ours).await;
    // A moment more: a row published twice would show here.
    got.extend(probe.collect(Duration::from_secs(3), 1, ours).await);
    let ids: BTreeSet<String> = got
        .iter()
        .filter_map(|d| body(d)["event_id"].as_str().map(str::to_owned))
        .collect();
    eprintln!(
        "two relays: {n} registrations, {} messages, {} event ids",
        got.len(),
        ids.len()
    );
    assert_eq!(got.len(), n, "each row published once");
    assert_eq!(ids.len(), n);
    handle_a.cancel();
    handle_b.cancel();
}
