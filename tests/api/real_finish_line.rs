//! The retry-safe finish line on real servers (issue 13, DESIGN §10): a
//! reply of the finish-line script lost between the service and Redis, and
//! RabbitMQ stopped at the moment a project completes. In both, `done` is
//! right, the last report answers COMPLETED (again when retried) and
//! `job.completed` reaches the broker exactly once, under one event id.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fred::prelude::{
    Builder, ClientLike, Config, HashesInterface, Pool, ReconnectPolicy, ServerConfig,
};
use lapin::{Connection, ConnectionProperties, options::QueueDeclareOptions};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use smap_identity::test_support::amqp::{bind_queue, drain_queue};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        bus::topology::EVENTS_EXCHANGE,
        redis::{RedisClients, RedisConfig, RedisProgressStore},
        system::{RandomIds, SystemClock},
    },
    app::{config::Settings, wiring::Adapters},
    domain::{
        events::{EventData, EventEnvelope},
        progress::{ItemId, ItemOutcome, ProgressService, ProjectId, ProjectStatus},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use uuid::Uuid;

use crate::{
    helpers::Remote,
    real_amqp::events,
    servers::{Probe, amqp_url, free_port, message_id, redis, run_app, services},
};

/// A TCP proxy on 127.0.0.1 in front of Redis. Armed, it lets the next
/// `EVALSHA` through to Redis — which runs the script — then throws the
/// reply away and closes that connection: the reply is lost after the work
/// was done, as when a proxy or the network drops it.
struct ReplyDropper {
    port: u16,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplyDropper {
    async fn start(upstream: (String, u16)) -> ReplyDropper {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let armed = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (a, d) = (armed.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, a.clone(), d.clone()));
            }
        });
        ReplyDropper {
            port,
            armed,
            dropped,
            task,
        }
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for ReplyDropper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let drop_reply = Arc::new(AtomicBool::new(false));
    let marked = drop_reply.clone();
    let requests = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let script = buf[..n].windows(7).any(|w| w == b"EVALSHA");
            // Marked before forwarding: the reply cannot overtake the mark.
            if script && armed.swap(false, Ordering::SeqCst) {
                marked.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let replies = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if drop_reply.load(Ordering::SeqCst) {
                dropped.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending drops all four halves: both connections close.
    tokio::select! {
        () = requests => {}
        () = replies => {}
    }
}

fn project_of(delivery: &lapin::message::Delivery) -> Option<String> {
    match EventEnvelope::from_json(&delivery.data).ok()?.data {
        EventData::JobCompleted(p) => Some(p.project_id.to_string()),
        _ => None,
    }
}

/// fred as the service configures it (no replay), or as it was before
/// issue 13 — the same reconnect policy and command timeout with fred's
/// default of 3 write attempts: an in-flight command is written again after
/// the reconnect, behind the caller's back.
async fn clients_through(proxy: u16, fred_replays: bool) -> (Pool, Option<RedisClients>) {
    if fred_replays {
        let config = Config {
            server: ServerConfig::new_centralized("127.0.0.1", proxy),
            database: Some(1),
            ..Config::default()
        };
        let mut builder = Builder::from_config(config);
        builder
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(2));
        let pool = builder.build_pool(2).expect("pool");
        pool.init().await.expect("connects through the proxy");
        return (pool, None);
    }
    let settings = RedisConfig {
        host: "127.0.0.1".into(),
        port: proxy,
        password: None,
        state_db: 1,
        sentinel: None,
    };
    let clients = RedisClients::connect(&settings).await.expect("clients");
    (clients.state.clone(), Some(clients))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_of_the_finish_line_script_neither_double_counts_nor_loses_job_completed() {
    let (Some(url), Some(redis)) = (amqp_url(), redis()) else {
        return;
    };
    let proxy = ReplyDropper::start((redis.host.clone(), redis.port)).await;
    let broker = AmqpBroker::connect(&url, AmqpConfig::default()).await;
    let mut probe = Probe::bind(&url, EVENTS_EXCHANGE, "job.#").await;
    let prefix = format!("test:completions:{}", Uuid::new_v4().simple());

    for fred_replays in [false, true] {
        let (pool, clients) = clients_through(proxy.port, fred_replays).await;
        let store = RedisProgressStore::new(pool.clone()).with_completion_prefix(&prefix);
        let service = ProgressService::new(
            Arc::new(store),
            Arc::new(events(Arc::new(AmqpEventPublisher::new(broker.clone())))),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        for with_item_id in [true, false] {
            let project = ProjectId::parse(&format!("lost-{}", Uuid::new_v4().simple())).unwrap();
            let item = |name: &str| with_item_id.then(|| ItemId::parse(name).unwrap());
            service.init_project(&project).await.unwrap();
            service
                .set_total(&project, 2, ProjectStatus::Processing)
                .await
                .unwrap();
            // Also loads the script: the dropped reply is the script's, not NOSCRIPT's.
            service
                .mark_item_done(&project, false, item("a").as_ref())
                .await
                .unwrap();

            let dropped_before = proxy.dropped();
            proxy.arm();
            let started = Instant::now();
            let last = service
                .mark_item_done(&project, true, item("b").as_ref())
                .await
                .expect("the retry after the lost reply answers");
            let took = started.elapsed();
            let retry = service
                .mark_item_done(&project, true, item("b").as_ref())
                .await
                .unwrap();
            let round = service.relay_completions().await.unwrap();

            let case = format!("item_id: {with_item_id}, fred replays: {fred_replays}");
            assert_eq!(
                proxy.dropped(),
                dropped_before + 1,
                "{case}: no reply dropped"
            );
            assert_eq!(last.outcome, ItemOutcome::Completed, "{case}");
            assert_eq!(
                (last.progress.done, last.progress.errors),
                (2, 1),
                "{case}: counted twice"
            );
            let event_id = last.completion.as_ref().unwrap().event_id;
            let id = project.to_string();
            let published = probe
                .collect(Duration::from_secs(3), 2, |d| {
                    project_of(d).as_deref() == Some(id.as_str())
                })
                .await;
            assert_eq!(published.len(), 1, "{case}: job.completed not once");
            assert_eq!(message_id(&published[0]), event_id.to_string(), "{case}");
            if with_item_id {
                assert_eq!(retry.outcome, ItemOutcome::Completed, "{case}");
                assert!(retry.duplicate, "{case}");
                assert_eq!(retry.completion.unwrap().event_id, event_id, "{case}");
            } else {
                // A new call without an item id is a new report.
                assert_eq!(retry.outcome, ItemOutcome::Processing, "{case}");
                assert_eq!(retry.progress.done, 3, "{case}");
            }
            assert_eq!(round.published, 0, "{case}: the relay published again");
            eprintln!(
                "lost script reply ({case}): answered COMPLETED after {took:?}, done {}/2, \
                 job.completed × {} with event id {event_id}",
                last.progress.done,
                published.len()
            );
        }
        match clients {
            Some(clients) => clients.shutdown().await,
            None => {
                let _ = pool.quit().await;
            }
        }
    }
    broker.close().await;
}

/// A durable queue on the test's own RabbitMQ node bound to `job.#`: it
/// keeps what reached the broker across a restart.
async fn declare_durable_probe(url: &str, queue: &str) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    bind_queue(&channel, queue, durable, EVENTS_EXCHANGE, "job.#")
        .await
        .unwrap();
    let _ = connection.close(200, "ok".into()).await;
}

/// The `message_id`s of every message left in `queue`.
async fn drain_ids(url: &str, queue: &str) -> Vec<String> {
    let taken = drain_queue(url, queue).await.expect("the probe queue");
    taken.iter().map(message_id).collect()
}

fn scratch(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("smap-finish-{name}-{}", Uuid::new_v4().simple()))
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rabbitmq_stopped_at_the_finish_line_job_completed_follows_once_when_it_returns() {
    if amqp_url().is_none() || redis().is_none() {
        return;
    }
    // Servers of its own: the completion relays of the other tests' apps
    // must not publish this completion on the shared broker.
    let (redis_dir, rabbit_dir) = (scratch("redis"), scratch("rabbit"));
    let redis_port = free_port();
    services(&["redis-start", &redis_dir, &redis_port.to_string()]);
    let (port, dist) = (free_port(), free_port());
    let start = [
        "rabbitmq-start",
        &rabbit_dir,
        &port.to_string(),
        &dist.to_string(),
    ]
    .map(String::from);
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    let stop = ["rabbitmq-stop", &rabbit_dir, &port.to_string()].map(String::from);
    let stop: Vec<&str> = stop.iter().map(String::as_str).collect();
    services(&start);
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let mut settings = Settings::for_tests();
    settings.start_consumers = false;
    settings.amqp_url = Some(SecretString::from(url.clone()));
    settings.redis = Some(RedisConfig {
        host: "127.0.0.1".into(),
        port: redis_port,
        password: None,
        state_db: 1,
        sentinel: None,
    });
    settings.completion_relay_interval = Duration::from_secs(1);
    let (base, ..) = run_app(&settings, Adapters::from_settings(&settings).await.unwrap());
    declare_durable_probe(&url, "test.finish-line").await;
    let api = Remote::new(&base);
    let key = settings.internal_key.expose_secret().to_owned();
    let project = format!("fin-{}", Uuid::new_v4().simple());
    let progress = format!("/internal/projects/{project}/progress");
    let items = format!("{progress}/items");
    let report = |item: &str| {
        let done = json!({"is_error": false, "item_id": item});
        api.internal(Method::POST, &items, &key, Some(done))
    };
    api.post_internal(&progress, &key).await;
    let total = Some(json!({"total": 2, "status": "PROCESSING"}));
    api.internal(Method::PUT, &progress, &key, total).await;
    let (status, _) = report("a").await;
    assert_eq!(status, 200);

    services(&stop);
    let (last_status, last) = report("b").await;
    let (down_retry_status, down_retry) = report("b").await;
    let raw = Builder::from_config(Config {
        server: ServerConfig::new_centralized("127.0.0.1", redis_port),
        database: Some(1),
        ..Config::default()
    })
    .build_pool(1)
    .unwrap();
    raw.init().await.unwrap();
    let hash = format!("smap:proj:{project}");
    let recorded: Option<String> = raw.next().hget(&hash, "completed_event_id").await.unwrap();
    let event_id = recorded.expect("the completion is recorded while the broker is down");
    tokio::time::sleep(Duration::from_secs(3)).await; // relay rounds fail meanwhile

    services(&start);
    let back = Instant::now();
    let mut published_after = None;
    while back.elapsed() < Duration::from_secs(30) {
        let published: Option<String> =
            raw.next().hget(&hash, "completed_published").await.unwrap();
        if published.as_deref() == Some("1") {
            published_after = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (after_status, after) = report("b").await;
    tokio::time::sleep(Duration::from_secs(3)).await; // three more relay rounds
    let ids = drain_ids(&url, "test.finish-line").await;

    assert_eq!(last_status, 200, "{last}");
    assert_eq!(last["data"]["status"], "COMPLETED", "{last}");
    assert_eq!(last["data"]["done"], 2);
    for (status, body) in [(down_retry_status, &down_retry), (after_status, &after)] {
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (
                &body["data"]["status"],
                &body["data"]["duplicate"],
                &body["data"]["done"]
            ),
            (&json!("COMPLETED"), &json!(true), &json!(2)),
            "{body}"
        );
    }
    let published_after =
        published_after.expect("job.completed within 30 s of the broker's return");
    assert_eq!(
        ids,
        std::slice::from_ref(&event_id),
        "job.completed exactly once, under the recorded id"
    );
    eprintln!(
        "RabbitMQ stopped at the finish line: last item {last_status} COMPLETED, retry while down \
         {down_retry_status} COMPLETED; job.completed published {published_after:?} after the node \
         was back; retry after {after_status} COMPLETED; on the broker: {} message(s), event id {event_id}",
        ids.len()
    );
    let _ = raw.quit().await;
    services(&stop);
    services(&["redis-stop", &redis_dir]);
}
