//! Transport benchmarks on real servers, each figure next to its baseline
//! measured in the same run: publish latency and throughput against a bare
//! lapin confirm-publish of the same bytes, dual versus single publishing,
//! `mark_item_done` against `redis-benchmark` HINCRBY, and the progress read
//! route under 1000 concurrent clients.
//!
//! Run: `scripts/bench.sh` (starts the servers, then `cargo bench --bench transport`).

// The library's limit of 60 lines a function (clippy.toml) holds here too:
// a benchmark reads as named steps, each short enough to check by eye.
#![warn(clippy::too_many_lines)]

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use fred::prelude::{HashesInterface, LuaInterface};
use futures_util::{StreamExt, stream};
use lapin::{
    BasicProperties, Connection,
    options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions},
};
use secrecy::{ExposeSecret, SecretString};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher, to_lapin},
        bus::message::MessageProperties,
        bus::topology::EVENTS_EXCHANGE,
        redis::{RedisClients, RedisConfig, RedisProgressStore},
    },
    app::{config::Settings, startup::Application, wiring::Adapters},
    domain::{
        events::{EventData, EventId, SealedEvent},
        progress::{
            COMPLETION_LEASE, CompletionStamp, ItemReport, ProjectId, ProjectStatus, ReportKey,
        },
        timestamp::Timestamp,
    },
    ports::{EventPublisher, ProgressStore},
};
use tokio::sync::Semaphore;
use uuid::Uuid;

mod support;

use support::{bind_queue, confirm_channel, env, event_service, trial};

const BENCH_QUEUE: &str = "bench.events";

struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let at = |p: f64| {
        samples[((samples.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(samples.len() - 1)]
    };
    Stats {
        n: samples.len(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

/// Bare lapin: one channel in confirm mode, the same bytes and properties.
struct Bare {
    _connection: Connection,
    channel: lapin::Channel,
}

impl Bare {
    async fn new(url: &str) -> Bare {
        let (connection, channel) = confirm_channel(url).await.unwrap();
        Bare {
            _connection: connection,
            channel,
        }
    }

    async fn publish(&self, event: &SealedEvent, props: &BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                event.routing_key().as_str().into(),
                BasicPublishOptions::default(),
                event.body(),
                props.clone(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
}

async fn sealed_events(n: usize, make: fn() -> EventData) -> Vec<SealedEvent> {
    let service = event_service(Arc::new(NullPublisher));
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(service.prepare(make()).await.unwrap());
    }
    out
}

struct NullPublisher;

#[async_trait::async_trait]
impl EventPublisher for NullPublisher {
    async fn publish(
        &self,
        event: &SealedEvent,
    ) -> Result<smap_identity::domain::events::EventId, smap_identity::ports::PublishError> {
        Ok(event.event_id())
    }
}

async fn latency(ours: &AmqpEventPublisher, bare: &Bare, label: &str, report: &mut Vec<String>) {
    const N: usize = 3000;
    let events = sealed_events(N + 200, trial).await;
    let props: Vec<BasicProperties> = events
        .iter()
        .map(|e| to_lapin(&MessageProperties::for_event(e)))
        .collect();

    // Warm both paths up.
    for (e, p) in events.iter().zip(&props).take(200) {
        ours.publish(e).await.unwrap();
        bare.publish(e, p).await;
    }
    // Interleave the two so that broker noise hits both alike.
    let (mut a, mut b) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for (e, p) in events.iter().zip(&props).skip(200) {
        let t = Instant::now();
        ours.publish(e).await.unwrap();
        a.push(t.elapsed());
        let t = Instant::now();
        bare.publish(e, p).await;
        b.push(t.elapsed());
    }
    let (a, b) = (stats(a), stats(b));
    println!("publish latency, one at a time, {label} ({} each)", a.n);
    println!("  adapter : p50 {}  p99 {}", ms(a.p50), ms(a.p99));
    println!("  bare    : p50 {}  p99 {}", ms(b.p50), ms(b.p99));
    report.push(format!(
        "| publish latency, one at a time, {label} (n={}) | p50 {} / p99 {} | p50 {} / p99 {} | p99 ≤ 2 ms: {} |",
        a.n, ms(a.p50), ms(a.p99), ms(b.p50), ms(b.p99), verdict(a.p99 <= Duration::from_millis(2))
    ));
}

async fn publish_benches(url: &str, report: &mut Vec<String>) {
    // Connecting declares the topology.
    let broker = AmqpBroker::connect(url, AmqpConfig::default()).await;
    let ours = AmqpEventPublisher::new(broker.clone());
    let bare = Bare::new(url).await;
    let admin = Bare::new(url).await;
    // First with no queue behind the key (the broker confirms without
    // persisting: this isolates the client side), then with a durable queue
    // (the broker writes every message to disk before it confirms).
    latency(&ours, &bare, "no queue bound", report).await;
    bind_queue(
        &admin.channel,
        BENCH_QUEUE,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        EVENTS_EXCHANGE,
        "subscription.created",
    )
    .await
    .unwrap();

    latency(&ours, &bare, "durable queue bound", report).await;
    throughput(&ours, bare, report).await;

    #[cfg(feature = "legacy-fanout")]
    dual_bench(url, &broker, report).await;

    admin
        .channel
        .queue_delete(BENCH_QUEUE.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    broker.close().await;
}

/// Throughput with many publishes in flight: the adapter, then bare lapin.
async fn throughput(ours: &AmqpEventPublisher, bare: Bare, report: &mut Vec<String>) {
    const TOTAL: usize = 20_000;
    const IN_FLIGHT: usize = 256;
    let events = Arc::new(sealed_events(TOTAL, trial).await);
    let props: Arc<Vec<BasicProperties>> = Arc::new(
        events
            .iter()
            .map(|e| to_lapin(&MessageProperties::for_event(e)))
            .collect(),
    );
    let t = Instant::now();
    stream::iter(0..TOTAL)
        .map(|i| {
            let ours = ours.clone();
            let events = events.clone();
            async move { ours.publish(&events[i]).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let ours_rate = TOTAL as f64 / t.elapsed().as_secs_f64();
    let bare = Arc::new(bare);
    let t = Instant::now();
    stream::iter(0..TOTAL)
        .map(|i| {
            let bare = bare.clone();
            let events = events.clone();
            let props = props.clone();
            async move { bare.publish(&events[i], &props[i]).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let bare_rate = TOTAL as f64 / t.elapsed().as_secs_f64();
    println!(
        "publish throughput, {IN_FLIGHT} in flight: adapter {ours_rate:.0}/s, bare {bare_rate:.0}/s"
    );
    report.push(format!(
        "| publish throughput, {IN_FLIGHT} in flight ({TOTAL} msgs) | {ours_rate:.0} msg/s | {bare_rate:.0} msg/s | ≥ 90 % of bare: {} ({:.0} %) |",
        verdict(ours_rate >= 0.9 * bare_rate),
        ours_rate / bare_rate * 100.0
    ));
}

#[cfg(feature = "legacy-fanout")]
async fn dual_bench(url: &str, broker: &AmqpBroker, report: &mut Vec<String>) {
    use smap_identity::adapters::{
        amqp::AmqpLegacySink, legacy::DualPublisher, mail::templates::EmailTemplates,
    };
    let _ = url;
    let single = AmqpEventPublisher::new(broker.clone());
    let dual = DualPublisher::new(
        Arc::new(AmqpEventPublisher::new(broker.clone())),
        Arc::new(AmqpLegacySink::new(broker.clone())),
        true,
        Arc::new(EmailTemplates::new().unwrap()),
    );
    const N: usize = 2000;
    let events = sealed_events(N + 200, || {
        support::verification(smap_identity::domain::locale::Locale::En)
    })
    .await;
    for e in events.iter().take(200) {
        single.publish(e).await.unwrap();
        dual.publish(e).await.unwrap();
    }
    let (mut s, mut d) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for e in events.iter().skip(200) {
        let t = Instant::now();
        single.publish(e).await.unwrap();
        s.push(t.elapsed());
        let t = Instant::now();
        dual.publish(e).await.unwrap();
        d.push(t.elapsed());
    }
    let (s, d) = (stats(s), stats(d));
    let ratio = d.p50.as_secs_f64() / s.p50.as_secs_f64();
    let ratio99 = d.p99.as_secs_f64() / s.p99.as_secs_f64();
    println!(
        "dual vs single (e-mail events): dual p50 {} p99 {}, single p50 {} p99 {}",
        ms(d.p50),
        ms(d.p99),
        ms(s.p50),
        ms(s.p99)
    );
    report.push(format!(
        "| dual-publish latency (n={}) | p50 {} / p99 {} | single: p50 {} / p99 {} | ≤ 1.25 × single: {} (p50 {:.2}×, p99 {:.2}×) |",
        d.n, ms(d.p50), ms(d.p99), ms(s.p50), ms(s.p99), verdict(ratio <= 1.25), ratio, ratio99
    ));
}

/// `redis-benchmark` running `command` at `clients` concurrency, with
/// `__rand_int__` drawn from 10^9 values: (ops/s, p99 ms).
fn redis_benchmark(
    redis: &RedisConfig,
    clients: usize,
    requests: usize,
    command: &[&str],
) -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            &redis.host,
            "-p",
            &redis.port.to_string(),
            "-c",
            &clients.to_string(),
            "-n",
            &requests.to_string(),
            "-r",
            "1000000000",
            "--csv",
        ])
        .args(command)
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().last().unwrap_or_default();
    let cols: Vec<f64> = row
        .split(',')
        .map(|c| c.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    (
        cols.get(1).copied().unwrap_or(f64::NAN),
        cols.get(6).copied().unwrap_or(f64::NAN),
    )
}

/// redis-benchmark (a C client) running the finish-line script itself, on
/// a project of its own, each call with a fresh call token as the use case
/// sends: what the script costs in Redis, whatever the client.
async fn script_ceiling(
    redis: &RedisConfig,
    pool: &fred::clients::Pool,
    clients: usize,
    requests: usize,
) -> (f64, f64) {
    let sha: String = pool
        .next()
        .script_load(RedisProgressStore::mark_item_done_script())
        .await
        .unwrap();
    let (id, keys) = script_project(pool).await;
    let args = script_args(&id, "__rand_int__");
    let mut command = vec!["evalsha", &sha, "5"];
    command.extend(keys.iter().chain(&args).map(String::as_str));
    redis_benchmark(redis, clients, requests, &command)
}

/// A project of its own for the script baselines: (id, its five keys),
/// its hash counting towards a total it never reaches.
async fn script_project(pool: &fred::clients::Pool) -> (String, Vec<String>) {
    let id = Uuid::new_v4().simple().to_string();
    let keys: Vec<String> = ["hash", "items", "calls", "pending", "records"]
        .iter()
        .map(|k| format!("bench:{id}:{k}"))
        .collect();
    let fields = [
        ("status", "PROCESSING"),
        ("total", "1000000000000"),
        ("done", "0"),
        ("errors", "0"),
    ];
    let _: i64 = pool.hset(&keys[0], fields).await.unwrap();
    (id, keys)
}

/// The script's ARGV as `mark_item_done` sends it for a call token, with a
/// fresh stamp (its claim times are unused below the finish line).
fn script_args(id: &str, token: &str) -> Vec<String> {
    let s = stamp();
    [
        "0",
        "86400",
        "call",
        &s.event_id.to_string(),
        &s.at.to_string(),
        "0",
        "0",
        id,
        token,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn stamp() -> CompletionStamp {
    CompletionStamp {
        event_id: EventId::from_uuid(Uuid::new_v4()),
        at: Timestamp::new(chrono::Utc::now()),
        lease: COMPLETION_LEASE,
    }
}

/// `concurrency` callers each running `op` back to back for `run_for`:
/// (ops/s, latency samples).
async fn closed_loop<F, Fut>(concurrency: usize, run_for: Duration, op: F) -> (f64, Stats)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while started.elapsed() < run_for {
                    let t = Instant::now();
                    op().await;
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
    (rate, stats(samples))
}

/// HINCRBY through the bare fred pool: the client library's own ceiling.
async fn fred_hincrby(
    pool: &fred::clients::Pool,
    concurrency: usize,
    run_for: Duration,
) -> (f64, Stats) {
    let pool = pool.clone();
    closed_loop(concurrency, run_for, move || {
        let pool = pool.clone();
        async move {
            let _: i64 = pool.hincrby("bench:fred", "done", 1).await.unwrap();
        }
    })
    .await
}

/// The finish-line script through the bare fred pool, with the arguments
/// `mark_item_done` sends (a fresh call token per call) but none of the
/// adapter's code around it.
async fn fred_script(
    pool: &fred::clients::Pool,
    concurrency: usize,
    run_for: Duration,
) -> (f64, Stats) {
    let script = Arc::new(fred::types::scripts::Script::from_lua(
        RedisProgressStore::mark_item_done_script(),
    ));
    let (id, keys) = script_project(pool).await;
    let pool = pool.clone();
    closed_loop(concurrency, run_for, move || {
        let (pool, script, keys, id) = (pool.clone(), script.clone(), keys.clone(), id.clone());
        async move {
            let args = script_args(&id, &Uuid::new_v4().to_string());
            let _: fred::types::Value = script
                .evalsha_with_reload(pool.next(), keys, args)
                .await
                .unwrap();
        }
    })
    .await
}

/// `mark_item_done` (the finish-line script, as the use case calls it) at
/// 1, 10 and 100 callers, against two baselines of the same run: HINCRBY
/// through the bare fred pool the store uses (the client library's own
/// ceiling) and redis-benchmark's HINCRBY (a C client, the goal's baseline).
async fn redis_benches(redis: &RedisConfig, report: &mut Vec<String>) {
    let clients = RedisClients::connect(redis).await.unwrap();
    let store = Arc::new(RedisProgressStore::new(clients.state.clone()));
    let run_for = Duration::from_secs(3);
    for concurrency in [1usize, 10, 100] {
        let project = ProjectId::parse(&format!("bench-{}", Uuid::new_v4().simple())).unwrap();
        store.init(&project).await.unwrap();
        let total = 1_000_000_000_000;
        let status = ProjectStatus::Processing;
        store
            .set_total(&project, total, status, &stamp())
            .await
            .unwrap();
        // The baselines first: the publish benches before leave RabbitMQ
        // busy writing for a while, which the first phase would pay for.
        let (fred_rate, fred) = fred_hincrby(&clients.state, concurrency, run_for).await;
        let (fred_lua_rate, _) = fred_script(&clients.state, concurrency, run_for).await;
        let (rate, s) = closed_loop(concurrency, run_for, {
            let store = store.clone();
            move || {
                let (store, project) = (store.clone(), project.clone());
                async move {
                    // What the use case sends: a call token and a stamp.
                    let report = ItemReport {
                        is_error: false,
                        key: ReportKey::Call(Uuid::new_v4()),
                        stamp: stamp(),
                    };
                    store.mark_item_done(&project, &report).await.unwrap();
                }
            }
        })
        .await;
        let requests = (rate * 3.0).max(10_000.0) as usize;
        let (raw_rate, raw_p99) = redis_benchmark(
            redis,
            concurrency,
            requests,
            &["hincrby", "bench:raw", "done", "1"],
        );
        let (lua_rate, _) = script_ceiling(redis, &clients.state, concurrency, requests).await;
        println!(
            "mark_item_done c={concurrency}: {rate:.0}/s p99 {}; fred HINCRBY {fred_rate:.0}/s p99 {}; redis-benchmark HINCRBY {raw_rate:.0}/s p99 {raw_p99:.3} ms; redis-benchmark running the script {lua_rate:.0}/s; fred running the script {fred_lua_rate:.0}/s",
            ms(s.p99),
            ms(fred.p99)
        );
        report.push(format!(
            "| mark_item_done, {concurrency} concurrent (n={}) | {rate:.0} ops/s, p99 {} | fred HINCRBY {fred_rate:.0} ops/s ({:.0} % of redis-benchmark); redis-benchmark HINCRBY {raw_rate:.0} ops/s, p99 {raw_p99:.3} ms; redis-benchmark running the script {lua_rate:.0} ops/s ({:.0} %); fred running the script {fred_lua_rate:.0} ops/s | ≥ 80 % of redis-benchmark: {} ({:.0} %; {:.0} % of fred) |",
            s.n,
            ms(s.p99),
            fred_rate / raw_rate * 100.0,
            lua_rate / raw_rate * 100.0,
            verdict(rate >= 0.8 * raw_rate),
            rate / raw_rate * 100.0,
            rate / fred_rate * 100.0
        ));
    }
    clients.shutdown().await;
}

async fn http_bench(settings: &Settings, report: &mut Vec<String>) {
    let adapters = Adapters::from_settings(settings).await.unwrap();
    let app = Application::build_with(settings, adapters).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let key = settings.internal_key.expose_secret().to_owned();
    let id = format!("bench-{}", Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    client
        .post(format!("{base}/internal/projects/{id}/progress"))
        .header("X-Internal-Key", &key)
        .send()
        .await
        .unwrap();

    let url = format!("{base}/projects/{id}/progress");
    // Dashboards poll: every client asks once per `period`, on its own connection.
    for (label, period, run_for) in [
        (
            "1000 clients polling every 1 s",
            Duration::from_secs(1),
            Duration::from_secs(6),
        ),
        (
            "1000 clients polling every 250 ms",
            Duration::from_millis(250),
            Duration::from_secs(6),
        ),
    ] {
        polling_round(&url, &key, label, (period, run_for), report).await;
    }
}

/// `CLIENTS` dashboards polling `url` every `period` for `run_for`, each on
/// its own connection: one row of the report.
async fn polling_round(
    url: &str,
    key: &str,
    label: &str,
    (period, run_for): (Duration, Duration),
    report: &mut Vec<String>,
) {
    let gate = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (url, key, gate) = (url.to_owned(), key.to_owned(), gate.clone());
            // Spread the clients over the period, as real pollers are.
            let offset = period.mul_f64(n as f64 / CLIENTS as f64);
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let _ = gate.acquire().await;
                poll(&client, &url, &key, offset, (period, run_for)).await
            })
        })
        .collect();
    gate.add_permits(CLIENTS);
    let mut samples = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (s, e) = task.await.unwrap();
        samples.extend(s);
        errors += e;
    }
    let s = stats(samples);
    let rate = s.n as f64 / run_for.as_secs_f64();
    println!(
        "GET progress, {label}: {} requests (~{rate:.0}/s), {errors} errors, p50 {} p99 {}",
        s.n,
        ms(s.p50),
        ms(s.p99)
    );
    report.push(format!(
        "| GET /projects/{{id}}/progress, {label} (~{rate:.0} req/s, {} requests, {errors} errors) | p50 {} / p99 {} | — | p99 < 10 ms: {} |",
        s.n, ms(s.p50), ms(s.p99), verdict(s.p99 < Duration::from_millis(10) && errors == 0)
    ));
}

/// Dashboards polling at once in the HTTP benchmark.
const CLIENTS: usize = 1000;

/// One dashboard client (on a connection of its own): after `offset`, a GET
/// of `url` every `period` for `run_for`; the latency of each answered
/// request and the count of failed ones.
async fn poll(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    offset: Duration,
    (period, run_for): (Duration, Duration),
) -> (Vec<Duration>, usize) {
    tokio::time::sleep(offset).await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut errors = 0usize;
    let mut next = Instant::now();
    while started.elapsed() < run_for {
        let t = Instant::now();
        match client.get(url).header("X-Internal-Key", key).send().await {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                samples.push(t.elapsed());
            }
            _ => errors += 1,
        }
        next += period;
        tokio::time::sleep_until(next.into()).await;
    }
    (samples, errors)
}

#[tokio::main]
async fn main() {
    let amqp = env("AMQP_URL");
    let redis = support::redis();
    let mut settings = Settings::for_tests();
    settings.amqp_url = Some(SecretString::from(amqp.clone()));
    settings.redis = Some(redis.clone());
    let mut report = vec![
        "| measurement | smap-identity | baseline (same run) | goal |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    publish_benches(&amqp, &mut report).await;
    redis_benches(&redis, &mut report).await;
    http_bench(&settings, &mut report).await;
    println!("\n{}", report.join("\n"));
}
