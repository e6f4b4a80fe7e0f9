//! Transport benchmarks on real servers, each figure next to its baseline
//! measured in the same run: publish latency and throughput against a bare
//! lapin confirm-publish of the same bytes, dual versus single publishing,
//! `mark_item_done` against `redis-benchmark` HINCRBY (and the finish-line
//! script through redis-benchmark, fred, redis-rs and a RESP writer of our
//! own, each with its CPU per call on the client's side and in Redis:
//! whose cost is it?), and the progress read route under 1000 concurrent
//! clients.
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

#[path = "support/raw_resp.rs"]
mod raw_resp;
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

/// "p50 … / p99 …", the form every latency cell of the report takes.
fn p50_p99(s: &Stats) -> String {
    format!("p50 {} / p99 {}", ms(s.p50), ms(s.p99))
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
        self.publish_to(
            EVENTS_EXCHANGE,
            event.routing_key().as_str(),
            event.body(),
            props,
        )
        .await;
    }

    async fn publish_to(&self, exchange: &str, key: &str, body: &[u8], props: &BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
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
        "| publish latency, one at a time, {label} (n={}) | {} | {} | p99 ≤ 2 ms: {} |",
        a.n,
        p50_p99(&a),
        p50_p99(&b),
        verdict(a.p99 <= Duration::from_millis(2))
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

/// The legacy bodies of `events` as the dual publisher renders them, and
/// every event's lapin properties: what the bare baseline sends.
#[cfg(feature = "legacy-fanout")]
fn legacy_bodies(events: &[SealedEvent]) -> Vec<(Vec<u8>, BasicProperties)> {
    use smap_identity::{
        adapters::{legacy::LegacyEmailMessage, mail::templates::EmailTemplates},
        domain::events::EventData::EmailVerificationRequested,
    };
    let templates = EmailTemplates::new().unwrap();
    events
        .iter()
        .map(|e| {
            let EmailVerificationRequested(payload) = &e.envelope().data else {
                unreachable!("the dual bench publishes verification events")
            };
            let message =
                LegacyEmailMessage::for_verification(payload, e.envelope().timestamp, &templates)
                    .unwrap();
            let props = to_lapin(&MessageProperties::for_event(e));
            (serde_json::to_vec(&message).unwrap(), props)
        })
        .collect()
}

/// Dual against single publishing of e-mail events, and the same pair for
/// bare lapin (two confirm channels, both copies sent before either confirm
/// is awaited): the broker's own price for a second durable copy, which
/// the goal's 1.25× cannot beat. The four are interleaved.
#[cfg(feature = "legacy-fanout")]
async fn dual_bench(url: &str, broker: &AmqpBroker, report: &mut Vec<String>) {
    use smap_identity::adapters::{
        amqp::AmqpLegacySink, bus::topology::LEGACY_EXCHANGE, legacy::DualPublisher,
        mail::templates::EmailTemplates,
    };
    let single = AmqpEventPublisher::new(broker.clone());
    let dual = DualPublisher::new(
        Arc::new(AmqpEventPublisher::new(broker.clone())),
        Arc::new(AmqpLegacySink::new(broker.clone())),
        true,
        Arc::new(EmailTemplates::new().unwrap()),
    );
    let (bare, bare_legacy) = (Bare::new(url).await, Bare::new(url).await);
    const N: usize = 2000;
    let events = sealed_events(N + 200, || {
        support::verification(smap_identity::domain::locale::Locale::En)
    })
    .await;
    let legacy = legacy_bodies(&events);
    let mut samples: [Vec<Duration>; 4] = Default::default();
    for i in 0..events.len() {
        let mut time = |k: usize, t: Instant| {
            if i >= 200 {
                samples[k].push(t.elapsed());
            }
        };
        let t = Instant::now();
        single.publish(&events[i]).await.unwrap();
        time(0, t);
        let t = Instant::now();
        dual.publish(&events[i]).await.unwrap();
        time(1, t);
        let (event, (legacy_body, props)) = (&events[i], &legacy[i]);
        let t = Instant::now();
        bare.publish(event, props).await;
        time(2, t);
        let t = Instant::now();
        tokio::join!(
            bare.publish(event, props),
            bare_legacy.publish_to(LEGACY_EXCHANGE, "", legacy_body, props)
        );
        time(3, t);
    }
    let [s, d, bs, bd] = samples.map(stats);
    dual_report(&s, &d, &bs, &bd, report);
}

#[cfg(feature = "legacy-fanout")]
fn dual_report(s: &Stats, d: &Stats, bs: &Stats, bd: &Stats, report: &mut Vec<String>) {
    let ratio = |a: &Stats, b: &Stats| {
        (
            a.p50.as_secs_f64() / b.p50.as_secs_f64(),
            a.p99.as_secs_f64() / b.p99.as_secs_f64(),
        )
    };
    let (ours50, ours99) = ratio(d, s);
    let (bare50, bare99) = ratio(bd, bs);
    let n = d.n;
    let (d, s, bd, bs) = (p50_p99(d), p50_p99(s), p50_p99(bd), p50_p99(bs));
    println!(
        "dual vs single (e-mail events): dual {d}, single {s} ({ours50:.2}×, {ours99:.2}×); bare lapin dual {bd}, single {bs} ({bare50:.2}×, {bare99:.2}×)"
    );
    report.push(format!(
        "| dual-publish latency (n={n}) | {d} (single: {s}) | bare lapin dual: {bd} (single: {bs}; {bare50:.2}×, {bare99:.2}×) | ≤ 1.25 × single: {} (p50 {ours50:.2}×, p99 {ours99:.2}×) |",
        verdict(ours50 <= 1.25 && ours99 <= 1.25),
    ));
}

/// `redis-cli` against the bench's Redis: the command's standard output.
fn redis_cli(redis: &RedisConfig, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", &redis.host, "-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `usec_per_call` of `command` in `INFO commandstats`.
fn server_usec(redis: &RedisConfig, command: &str) -> f64 {
    let stats = redis_cli(redis, &["info", "commandstats"]);
    let prefix = format!("cmdstat_{command}:");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|fields| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix("usec_per_call="))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// `redis-benchmark` running `command` at `clients` concurrency, with
/// `__rand_int__` drawn from 10^9 values, and Redis's own time per call
/// (the statistics are reset just before: nothing else runs meanwhile).
fn redis_benchmark(
    redis: &RedisConfig,
    clients: usize,
    requests: usize,
    command: &[&str],
) -> CClient {
    redis_cli(redis, &["config", "resetstat"]);
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
    CClient {
        rate: cols.get(1).copied().unwrap_or(f64::NAN),
        p99: cols.get(6).copied().unwrap_or(f64::NAN),
        server_us: server_usec(redis, &command[0].to_lowercase()),
    }
}

/// The least any atomic finish line must do for a report: read the state,
/// count the report once (its token), count the item, compare with the
/// total. No TTL refresh, no completion record, a one-number answer: the
/// floor for the contract's step in Redis, whatever the code around it.
const MINIMAL_FINISH_LINE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'status', 'total')
if not v[1] then return -1 end
if redis.call('SADD', KEYS[3], ARGV[9]) == 0 then return 0 end
local done = redis.call('HINCRBY', KEYS[1], 'done', 1)
if tonumber(v[2]) > 0 and done >= tonumber(v[2]) then return 2 end
return 1
"#;

/// A C client's figures: ops/s, p99 (ms), and Redis's own time per call
/// (µs, `INFO commandstats` around the run).
struct CClient {
    rate: f64,
    p99: f64,
    server_us: f64,
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
    lua: &str,
    concurrency: usize,
    run_for: Duration,
) -> (f64, Stats) {
    let script = Arc::new(fred::types::scripts::Script::from_lua(lua));
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

/// A redis-rs multiplexed connection (another Rust client library, one
/// connection its callers share) to the state database.
async fn redis_rs(redis: &RedisConfig) -> redis::aio::MultiplexedConnection {
    let auth = redis
        .password
        .as_ref()
        .map(|p| format!(":{}@", p.expose_secret()))
        .unwrap_or_default();
    let url = format!(
        "redis://{auth}{}:{}/{}",
        redis.host, redis.port, redis.state_db
    );
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// HINCRBY through redis-rs: that library's own ceiling.
async fn redis_rs_hincrby(redis: &RedisConfig, concurrency: usize, run_for: Duration) -> f64 {
    let conn = redis_rs(redis).await;
    closed_loop(concurrency, run_for, move || {
        let mut conn = conn.clone();
        async move {
            let _: i64 = redis::cmd("HINCRBY")
                .arg("bench:redis-rs")
                .arg("done")
                .arg(1)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    })
    .await
    .0
}

/// The finish-line script through redis-rs with the arguments
/// `mark_item_done` sends: whether a Rust client can get where the C
/// client gets.
async fn redis_rs_script(
    redis: &RedisConfig,
    pool: &fred::clients::Pool,
    concurrency: usize,
    run_for: Duration,
) -> f64 {
    let conn = redis_rs(redis).await;
    let script = Arc::new(redis::Script::new(
        RedisProgressStore::mark_item_done_script(),
    ));
    let (id, keys) = script_project(pool).await;
    closed_loop(concurrency, run_for, move || {
        let (mut conn, script, keys, id) = (conn.clone(), script.clone(), keys.clone(), id.clone());
        async move {
            let args = script_args(&id, &Uuid::new_v4().to_string());
            let mut invocation = script.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg);
            }
            let _: redis::Value = invocation.invoke_async(&mut conn).await.unwrap();
        }
    })
    .await
    .0
}

/// The finish-line script through a RESP writer of our own
/// (`raw_resp`), one connection per caller written and read from the
/// caller's task: what a client made for this one call could reach.
/// `RAW_LEAN=1`: the stamp built once per caller and a counter as the
/// token, as redis-benchmark sends it (one fresh argument a call instead
/// of five: what fresh arguments cost the client and Redis).
async fn raw_script(
    redis: &RedisConfig,
    pool: &fred::clients::Pool,
    concurrency: usize,
    run_for: Duration,
) -> f64 {
    let sha: String = pool
        .next()
        .script_load(RedisProgressStore::mark_item_done_script())
        .await
        .unwrap();
    let (id, keys) = script_project(pool).await;
    let target = RawTarget {
        addr: format!("{}:{}", redis.host, redis.port),
        password: redis
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned()),
        db: redis.state_db,
        sha,
        id,
        keys,
        lean: std::env::var("RAW_LEAN").is_ok_and(|v| v == "1"),
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|n| tokio::spawn(raw_caller(target.clone(), n, started, run_for)))
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await.unwrap();
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

#[derive(Clone)]
struct RawTarget {
    addr: String,
    password: Option<String>,
    db: u8,
    sha: String,
    id: String,
    keys: Vec<String>,
    lean: bool,
}

async fn raw_caller(t: RawTarget, caller: usize, started: Instant, run_for: Duration) -> u64 {
    let mut conn = raw_resp::RawConnection::connect(&t.addr, t.password.as_deref(), t.db).await;
    let mut args = script_args(&t.id, "");
    let mut calls = 0u64;
    while started.elapsed() < run_for {
        if t.lean {
            args[8] = format!("{caller}-{calls}");
        } else {
            args = script_args(&t.id, &Uuid::new_v4().to_string());
        }
        let mut parts: Vec<&[u8]> = vec![b"EVALSHA", t.sha.as_bytes(), b"5"];
        parts.extend(t.keys.iter().chain(&args).map(|s| s.as_bytes()));
        let reply = conn.call(&parts).await;
        assert!(reply.starts_with(b"*11"));
        calls += 1;
    }
    calls
}

/// `mark_item_done` (the finish-line script, as the use case calls it) at
/// 1, 10 and 100 callers, against two baselines of the same run: HINCRBY
/// through the bare fred pool the store uses (the client library's own
/// ceiling) and redis-benchmark's HINCRBY (a C client, the goal's baseline).
/// `mark_item_done` as the use case calls it, `concurrency` callers.
async fn ours_mark(
    store: &Arc<RedisProgressStore>,
    project: ProjectId,
    concurrency: usize,
    run_for: Duration,
) -> (f64, Stats) {
    let store = store.clone();
    closed_loop(concurrency, run_for, move || {
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
    })
    .await
}

/// What one phase cost: calls a second, and CPU per call on the client's
/// side (this process and the redis-benchmark it runs) and in Redis.
#[derive(Clone, Copy)]
struct Phase {
    rate: f64,
    client_us: f64,
    redis_us: f64,
}

/// CPU so far of this process with its exited children (redis-benchmark),
/// and of Redis.
fn cpu_now() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let redis = support::cpu_with(&["redis-server"])[1];
    (support::stat_cpu(&stat, true).1, redis)
}

/// Runs `phase` (which answers calls a second, and what else it measured)
/// and its CPU per call on each side: on two cores a loop that keeps both
/// busy cannot go faster than 2 s of CPU / (client + Redis) per call.
async fn costed<T>(phase: impl std::future::Future<Output = (f64, T)>) -> (Phase, T) {
    let (client, redis) = cpu_now();
    let started = Instant::now();
    let (rate, extra) = phase.await;
    let calls = rate * started.elapsed().as_secs_f64();
    let (client_after, redis_after) = cpu_now();
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / calls;
    let cost = Phase {
        rate,
        client_us: per_call(client_after - client),
        redis_us: per_call(redis_after - redis),
    };
    (cost, extra)
}

/// One number of callers: every client running HINCRBY and the scripts.
struct Round {
    ours: Phase,
    ours_p99: Duration,
    fred_hincrby: Phase,
    fred_script: Phase,
    fred_minimal: Phase,
    rs_hincrby: Phase,
    rs_script: Phase,
    raw_script: Phase,
    c_hincrby: (Phase, CClient),
    c_script: (Phase, CClient),
    c_minimal: (Phase, CClient),
}

async fn redis_round(
    redis: &RedisConfig,
    pool: &fred::clients::Pool,
    store: &Arc<RedisProgressStore>,
    concurrency: usize,
) -> Round {
    let run_for = Duration::from_secs(3);
    let project = ProjectId::parse(&format!("bench-{}", Uuid::new_v4().simple())).unwrap();
    store.init(&project).await.unwrap();
    let (total, status) = (1_000_000_000_000, ProjectStatus::Processing);
    store
        .set_total(&project, total, status, &stamp())
        .await
        .unwrap();
    let mark_lua = RedisProgressStore::mark_item_done_script();
    // The baselines first: the publish benches before leave RabbitMQ
    // busy writing for a while, which the first phase would pay for.
    let rates = |(rate, _): (f64, Stats)| (rate, ());
    let fred_h = costed(async { rates(fred_hincrby(pool, concurrency, run_for).await) }).await;
    let fred_s = costed(async { rates(fred_script(pool, mark_lua, concurrency, run_for).await) });
    let fred_s = fred_s.await;
    let minimal = MINIMAL_FINISH_LINE;
    let fred_m = costed(async { rates(fred_script(pool, minimal, concurrency, run_for).await) });
    let fred_m = fred_m.await;
    let rs_h = costed(async { (redis_rs_hincrby(redis, concurrency, run_for).await, ()) }).await;
    let rs_s = costed(async { (redis_rs_script(redis, pool, concurrency, run_for).await, ()) });
    let rs_s = rs_s.await;
    let raw_s = costed(async { (raw_script(redis, pool, concurrency, run_for).await, ()) });
    let raw_s = raw_s.await;
    let (ours, s) = costed(ours_mark(store, project, concurrency, run_for)).await;
    let requests = (ours.rate * 3.0).max(10_000.0) as usize;
    let c = |command: Vec<String>| {
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let client = redis_benchmark(redis, concurrency, requests, &command);
        (client.rate, client)
    };
    let hincrby = ["hincrby", "bench:raw", "done", "1"]
        .map(str::to_owned)
        .to_vec();
    let c_hincrby = costed(async { c(hincrby) }).await;
    let script = script_command(pool, mark_lua).await;
    let c_script = costed(async { c(script) }).await;
    let minimal = script_command(pool, MINIMAL_FINISH_LINE).await;
    let c_minimal = costed(async { c(minimal) }).await;
    Round {
        ours,
        ours_p99: s.p99,
        fred_hincrby: fred_h.0,
        fred_script: fred_s.0,
        fred_minimal: fred_m.0,
        rs_hincrby: rs_h.0,
        rs_script: rs_s.0,
        raw_script: raw_s.0,
        c_hincrby,
        c_script,
        c_minimal,
    }
}

/// redis-benchmark's arguments for running `lua` on a project of its own,
/// each call with a fresh call token as the use case sends.
async fn script_command(pool: &fred::clients::Pool, lua: &str) -> Vec<String> {
    let sha: String = pool.next().script_load(lua).await.unwrap();
    let (id, keys) = script_project(pool).await;
    let mut command = vec!["evalsha".to_owned(), sha, "5".to_owned()];
    command.extend(keys.into_iter().chain(script_args(&id, "__rand_int__")));
    command
}

async fn redis_benches(redis: &RedisConfig, report: &mut Vec<String>) {
    let clients = RedisClients::connect(redis).await.unwrap();
    let store = Arc::new(RedisProgressStore::new(clients.state.clone()));
    let mut rounds = Vec::new();
    for concurrency in [1usize, 10, 100] {
        let round = redis_round(redis, &clients.state, &store, concurrency).await;
        print_round(concurrency, &round);
        rounds.push((concurrency, round));
    }
    report_rates(&rounds, report);
    report_costs(&rounds, report);
    clients.shutdown().await;
}

fn print_round(concurrency: usize, r: &Round) {
    println!(
        "mark_item_done c={concurrency}: {:.0}/s p99 {}; fred HINCRBY {:.0}/s, the script {:.0}/s, the minimal script {:.0}/s; redis-rs HINCRBY {:.0}/s, the script {:.0}/s; our RESP writer running the script {:.0}/s; redis-benchmark: HINCRBY {:.0}/s p99 {:.3} ms ({:.2} µs in Redis), the script {:.0}/s ({:.1} µs), the minimal script {:.0}/s ({:.1} µs)",
        r.ours.rate,
        ms(r.ours_p99),
        r.fred_hincrby.rate,
        r.fred_script.rate,
        r.fred_minimal.rate,
        r.rs_hincrby.rate,
        r.rs_script.rate,
        r.raw_script.rate,
        r.c_hincrby.1.rate,
        r.c_hincrby.1.p99,
        r.c_hincrby.1.server_us,
        r.c_script.1.rate,
        r.c_script.1.server_us,
        r.c_minimal.1.rate,
        r.c_minimal.1.server_us,
    );
}

/// The goal's table: each client's rate as a share of redis-benchmark's
/// HINCRBY at the same callers.
fn report_rates(rounds: &[(usize, Round)], report: &mut Vec<String>) {
    report.extend([
        String::new(),
        "| callers | `mark_item_done` (goal ≥ 80 %) | redis-benchmark HINCRBY (µs in Redis) | redis-benchmark running the script (µs in Redis) | redis-benchmark running the minimal script (µs in Redis) | fred HINCRBY | fred running the script | fred running the minimal script | redis-rs HINCRBY | redis-rs running the script | our RESP writer running the script |".to_owned(),
        "|---|---|---|---|---|---|---|---|---|---|---|".to_owned(),
    ]);
    for (concurrency, r) in rounds {
        let base = r.c_hincrby.1.rate;
        let share = |p: &Phase| format!("{:.0}/s ({:.0} %)", p.rate, p.rate / base * 100.0);
        let c = |(p, c): &(Phase, CClient)| format!("{} ({:.1} µs)", share(p), c.server_us);
        report.push(format!(
            "| {concurrency} | {}, p99 {}: {} | {:.0}/s ({:.2} µs) | {} | {} | {} | {} | {} | {} | {} | {} |",
            share(&r.ours),
            ms(r.ours_p99),
            verdict(r.ours.rate >= 0.8 * base),
            base,
            r.c_hincrby.1.server_us,
            c(&r.c_script),
            c(&r.c_minimal),
            share(&r.fred_hincrby),
            share(&r.fred_script),
            share(&r.fred_minimal),
            share(&r.rs_hincrby),
            share(&r.rs_script),
            share(&r.raw_script),
        ));
    }
}

/// Where the time goes: CPU per call on each side, and the rate two cores
/// could give if both were busy all the time (2 s / (client + Redis)).
fn report_costs(rounds: &[(usize, Round)], report: &mut Vec<String>) {
    report.extend([
        String::new(),
        "| callers | client, command | calls/s | client CPU per call (µs) | Redis CPU per call (µs) | two cores' ceiling (2 s / both) |".to_owned(),
        "|---|---|---|---|---|---|".to_owned(),
    ]);
    for (concurrency, r) in rounds {
        let rows = [
            ("`mark_item_done`", r.ours),
            ("redis-benchmark, HINCRBY", r.c_hincrby.0),
            ("redis-benchmark, the script", r.c_script.0),
            ("redis-benchmark, the minimal script", r.c_minimal.0),
            ("fred, HINCRBY", r.fred_hincrby),
            ("fred, the script", r.fred_script),
            ("fred, the minimal script", r.fred_minimal),
            ("redis-rs, HINCRBY", r.rs_hincrby),
            ("redis-rs, the script", r.rs_script),
            ("our RESP writer, the script", r.raw_script),
        ];
        for (label, p) in rows {
            report.push(format!(
                "| {concurrency} | {label} | {:.0} | {:.1} | {:.1} | {:.0}/s |",
                p.rate,
                p.client_us,
                p.redis_us,
                2e6 / (p.client_us + p.redis_us)
            ));
        }
    }
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
        "| GET /projects/{{id}}/progress, {label} (~{rate:.0} req/s, {} requests, {errors} errors) | {} | — | p99 < 10 ms: {} |",
        s.n,
        p50_p99(&s),
        verdict(s.p99 < Duration::from_millis(10) && errors == 0)
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
    // `TRANSPORT_BENCH=redis` (say; a comma-separated list of publish,
    // redis, http) runs only those parts: the finish line's one-caller row
    // is a round-trip measurement that the publish part, run just before,
    // disturbs while RabbitMQ is still writing its messages to disk.
    let parts = std::env::var("TRANSPORT_BENCH").unwrap_or_default();
    let runs = |part: &str| parts.is_empty() || parts.split(',').any(|p| p.trim() == part);
    if runs("publish") {
        publish_benches(&amqp, &mut report).await;
    }
    if runs("redis") {
        redis_benches(&redis, &mut report).await;
    }
    if runs("http") {
        http_bench(&settings, &mut report).await;
    }
    println!("\n{}", report.join("\n"));
}
