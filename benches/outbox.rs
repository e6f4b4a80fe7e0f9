//! The transactional outbox on real PostgreSQL and RabbitMQ (issue 13):
//!
//! 1. Registration with the outbox versus `direct` (publish inside the
//!    transaction): throughput, p50 and p99, interleaved in two rounds each,
//!    with the production Argon2id cost and with a token one (so the
//!    database and broker part is not hidden behind the hash); and the CPU
//!    per registration of this process (client and relay), PostgreSQL and
//!    RabbitMQ together, the relay's publishing included — steadier than
//!    the throughput on 2 shared cores.
//! 2. Delay from commit to broker with the relay running (NOTIFY wake-up):
//!    the time from `register` returning (its transaction committed) to a
//!    consumer of a probe queue holding the event, one registration at a
//!    time and with 4 clients.
//! 3. Relay drain: 10 000 events waiting in the outbox (written while no
//!    relay ran — what a broker outage leaves behind), then one relay
//!    started: events per second until the outbox is empty, next to bare
//!    lapin publishing the same 10 000 bodies with confirms, 256 in flight
//!    (the broker's ceiling on this machine).
//!
//! Run: `scripts/bench.sh --bench outbox`.

// The library's limit of 60 lines a function (clippy.toml) holds here too:
// a benchmark reads as named steps, each short enough to check by eye.
#![warn(clippy::too_many_lines)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use diesel_async::RunQueryDsl;
use futures_util::{StreamExt, stream};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        argon2::{Argon2Hasher, HashBound},
        bus::topology::EVENTS_EXCHANGE,
        postgres::{PgIdentityStore, PgPool},
        system::{RandomIds, RandomOtps, SystemClock},
    },
    app::relay::{OutboxRelay, RelayConfig},
    domain::{
        account::{AccountService, Password, Registration},
        billing::BillingService,
        email_address::Email,
        events::{EventDelivery, EventService},
        locale::Locale,
    },
    ports::{IdentityStore, PasswordHasher, StorePlanCatalog},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod support;

use support::{bind_queue, confirm_channel, cpu_with, env, migrated_database, stat_cpu};

const CLIENTS: usize = 4;
const ROUND: usize = 250;
const DRAIN: usize = 10_000;
const ROUTING_KEY: &str = "email.verification.requested";

struct Run {
    n: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn run_of(mut samples: Vec<Duration>, wall: Duration) -> Run {
    let n = samples.len();
    samples.sort_unstable();
    let at = |p: f64| {
        samples[((n as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(n - 1)]
    };
    Run {
        n,
        rate: n as f64 / wall.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Everything one registration path needs.
struct Path {
    accounts: Arc<AccountService>,
}

fn path(
    store: &Arc<dyn IdentityStore>,
    broker: &AmqpBroker,
    hasher: Arc<dyn PasswordHasher>,
    delivery: EventDelivery,
) -> Path {
    let clock = Arc::new(SystemClock);
    let ids = Arc::new(RandomIds);
    let events = Arc::new(
        EventService::new(
            Arc::new(AmqpEventPublisher::new(broker.clone())),
            clock.clone(),
            ids.clone(),
            Arc::new(StorePlanCatalog::new(store.clone())),
        )
        .with_delivery(delivery),
    );
    let billing = Arc::new(BillingService::new(
        store.clone(),
        events.clone(),
        clock.clone(),
        ids.clone(),
    ));
    Path {
        accounts: Arc::new(AccountService::new(
            store.clone(),
            hasher,
            Arc::new(RandomOtps),
            events,
            billing,
            clock,
            ids,
        )),
    }
}

fn registration(tag: &str, i: usize) -> Registration {
    Registration {
        email: Email::parse(&format!("{tag}{i}@example.com")).unwrap(),
        password: Password::parse("correct horse battery staple").unwrap(),
        full_name: None,
        locale: Locale::En,
    }
}

/// `n` registrations, `clients` at a time; each sample ends when `register`
/// returned, so its transaction has committed. Returns the commit instants
/// by user id too.
async fn register_many(
    p: &Path,
    tag: &str,
    n: usize,
    clients: usize,
) -> (Run, HashMap<Uuid, Instant>) {
    let committed = Arc::new(Mutex::new(HashMap::with_capacity(n)));
    let started = Instant::now();
    let samples: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let accounts = p.accounts.clone();
            let committed = committed.clone();
            let r = registration(tag, i);
            async move {
                let t = Instant::now();
                let user = accounts.register(r).await.unwrap();
                let done = Instant::now();
                committed.lock().unwrap().insert(user.id, done);
                done - t
            }
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let wall = started.elapsed();
    let committed = std::mem::take(&mut *committed.lock().unwrap());
    (run_of(samples, wall), committed)
}

/// A consumer on a probe queue bound to the verification events: the
/// instant each user's event arrived.
struct Probe {
    arrived: Arc<Mutex<HashMap<Uuid, Instant>>>,
    _connection: Connection,
}

impl Probe {
    async fn start(url: &str) -> Probe {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("bench.outbox.{}", Uuid::new_v4().simple());
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        bind_queue(&channel, &queue, options, EVENTS_EXCHANGE, ROUTING_KEY)
            .await
            .unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "bench".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let arrived = Arc::new(Mutex::new(HashMap::new()));
        let sink = arrived.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let now = Instant::now();
                let body: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
                let user = body["payload"]["data"]["user_id"]
                    .as_str()
                    .and_then(|s| s.parse::<Uuid>().ok())
                    .expect("a verification event names its user");
                sink.lock().unwrap().insert(user, now);
            }
        });
        Probe {
            arrived,
            _connection: connection,
        }
    }

    fn count(&self) -> usize {
        self.arrived.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize, limit: Duration) {
        let t = Instant::now();
        while self.count() < n && t.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(self.count() >= n, "{} of {n} events arrived", self.count());
    }

    /// Commit-to-arrival delays of the users in `committed`.
    fn delays(&self, committed: &HashMap<Uuid, Instant>) -> Vec<Duration> {
        let arrived = self.arrived.lock().unwrap();
        committed
            .iter()
            .map(|(user, at)| {
                arrived
                    .get(user)
                    .expect("every committed registration has its event")
                    .saturating_duration_since(*at)
            })
            .collect()
    }
}

#[tokio::main]
async fn main() {
    // Warnings (a relay's failed publish, a backoff) go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // `OUTBOX_BENCH=drain`, `compare`, `delay`: only part 3, 1 or 2;
    // `OUTBOX_BENCH_HASH=production` (or `token`) only that hash in part 1.
    let part = std::env::var("OUTBOX_BENCH").unwrap_or_default();
    let only_drain = part == "drain" || part == "delay";
    let only_hash = std::env::var("OUTBOX_BENCH_HASH").unwrap_or_default();
    let amqp = env("AMQP_URL");
    let (url, pool) = migrated_database(16).await;
    // The listener wakes this store's relay, as `serve` wires them.
    let listener = Arc::new(PgIdentityStore::new(pool.clone()));
    let store: Arc<dyn IdentityStore> = listener.clone();
    // Connecting declares the topology (smtp_send_email_v2 is bound to the
    // verification key, so every event is written to a durable queue).
    let broker = AmqpBroker::connect(&amqp, AmqpConfig::default()).await;
    let probe = Probe::start(&amqp).await;

    let (production, token) = hashers();

    // The relay of the outbox paths runs throughout, as in `serve`.
    let relay_events = Arc::new(
        EventService::new(
            Arc::new(AmqpEventPublisher::new(broker.clone())),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
            Arc::new(StorePlanCatalog::new(store.clone())),
        )
        .with_delivery(EventDelivery::Outbox),
    );
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(store.clone(), relay_events.clone(), RelayConfig::default())
        .spawn(stop.clone());
    let listen = listener.spawn_listener(url.clone(), stop.clone());

    // 1. Outbox versus direct.
    let all: [(&str, &Arc<dyn PasswordHasher>); 2] =
        [("token (8 KiB, t=1)", &token), ("production", &production)];
    let hashes: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| !only_drain && name.starts_with(only_hash.as_str()))
        .collect();
    let mut expected = compare_deliveries(&store, &broker, &probe, &hashes).await;
    probe.wait_for(expected, Duration::from_secs(60)).await;
    println!(
        "\n{expected} registrations, {} events on the probe queue\n",
        probe.count()
    );

    if part == "compare" {
        return;
    }
    // 2. Commit to broker, relay running.
    let token_outbox = path(&store, &broker, token.clone(), EventDelivery::Outbox);
    expected = commit_delays(&probe, &token_outbox, expected).await;
    if part == "delay" {
        return;
    }

    // 3. Drain: stop the relay, queue 10 000 events, start one relay.
    stop.cancel();
    relay.await.unwrap();
    listen.await.unwrap();
    let (relay_wall, config) = drain(&store, relay_events, &token_outbox).await;
    expected += DRAIN;
    probe.wait_for(expected, Duration::from_secs(60)).await;
    let relay_rate = DRAIN as f64 / relay_wall.as_secs_f64();

    // The ceiling: bare lapin, the same bodies, confirms, 256 in flight.
    let (published, bare_rate) = bare_ceiling(&pool, &amqp).await;
    print_drain(&config, relay_wall, relay_rate, (published, bare_rate));
    broker.close().await;
}

/// The production Argon2id and a token one (m = 8 KiB, t = 1:
/// microseconds, so the table shows the store and the broker, not the
/// hash), each bounded to as many hashes at once as there are clients.
fn hashers() -> (Arc<dyn PasswordHasher>, Arc<dyn PasswordHasher>) {
    let bound = HashBound {
        concurrency: CLIENTS,
        ..HashBound::default()
    };
    (
        Arc::new(Argon2Hasher::owasp().bounded(bound)),
        Arc::new(Argon2Hasher::with(8, 1, 1).bounded(bound)),
    )
}

/// The processes whose CPU a registration costs besides this one (the
/// bench, which is also the relay): PostgreSQL's and RabbitMQ's.
const SERVERS: &[&str] = &["postgres", "beam.smp"];

/// One delivery's rounds, summed.
#[derive(Default)]
struct Sums {
    rate: f64,
    p50: Vec<Duration>,
    p99: Vec<Duration>,
    cpu: Vec<Duration>,
    /// PostgreSQL's CPU by process role (`pg_roles`), all rounds.
    roles: BTreeMap<String, Duration>,
}

/// PostgreSQL's CPU so far by the role in each process's title: the
/// connections' backends together, each auxiliary process (walwriter,
/// checkpointer, autovacuum launcher …), and the postmaster with the
/// children it collected (the autovacuum workers, which exit after each
/// table).
fn pg_roles() -> BTreeMap<String, Duration> {
    let mut roles = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return roles;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let title = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let title = String::from_utf8_lossy(&title).replace('\0', " ");
        let (comm, cpu) = stat_cpu(&stat, !title.starts_with("postgres:"));
        if comm != "postgres" {
            continue;
        }
        let role = match title.strip_prefix("postgres:") {
            None => "postmaster and exited children (autovacuum workers)".to_owned(),
            Some(rest) if rest.contains('(') => "backends (the connections)".to_owned(),
            Some(rest) => rest.rsplit(": ").next().unwrap_or(rest).trim().to_owned(),
        };
        *roles.entry(role).or_default() += cpu;
    }
    roles
}

/// Adds what each PostgreSQL role spent since `before` to `sums`.
fn add_roles(sums: &mut BTreeMap<String, Duration>, before: &BTreeMap<String, Duration>) {
    for (role, now) in pg_roles() {
        let spent = now.saturating_sub(before.get(&role).copied().unwrap_or_default());
        *sums.entry(role).or_default() += spent;
    }
}

/// PostgreSQL's CPU per registration by role, direct against outbox.
fn print_roles(hash: &str, direct: &Sums, outbox: &Sums, registrations: usize) {
    println!("\nPostgreSQL per registration by process, {hash} hash (all rounds)\n");
    println!("| process | direct | outbox | outbox − direct |");
    println!("|---|---|---|---|");
    let per = |sums: &Sums, role: &str| {
        sums.roles
            .get(role)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3
            / registrations as f64
    };
    for role in direct
        .roles
        .keys()
        .chain(outbox.roles.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (d, o) = (per(direct, role), per(outbox, role));
        println!("| {role} | {d:.3} ms | {o:.3} ms | {:+.3} ms |", o - d);
    }
    println!();
}

/// The CPU of each of `cpu_with(SERVERS)` since `before`, per one of `n`.
fn cpu_per(before: &[Duration], n: usize) -> Vec<Duration> {
    cpu_with(SERVERS)
        .iter()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(*before) / n as u32)
        .collect()
}

/// Registration through the direct and the outbox path, rounds
/// interleaved, for each hasher in `hashes`: prints a row per round and the
/// ratio of the means; the registrations made.
async fn compare_deliveries(
    store: &Arc<dyn IdentityStore>,
    broker: &AmqpBroker,
    probe: &Probe,
    hashes: &[(&str, &Arc<dyn PasswordHasher>)],
) -> usize {
    println!(
        "Registration, {CLIENTS} clients, {ROUND} per row, rounds interleaved (direct, outbox, direct, outbox)\n"
    );
    println!(
        "| hash | delivery | round | throughput | p50 | p99 | CPU per registration (bench and relay / PostgreSQL / RabbitMQ) |"
    );
    println!("|---|---|---|---|---|---|---|");
    // `OUTBOX_BENCH_ROUNDS` (default 2): interleaved rounds per hash.
    let rounds: u32 = std::env::var("OUTBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let mut expected = 0;
    for &(hash_name, hasher) in hashes {
        let direct = path(store, broker, hasher.clone(), EventDelivery::Direct);
        let outbox = path(store, broker, hasher.clone(), EventDelivery::Outbox);
        let mut sums: HashMap<&str, Sums> = HashMap::new();
        for round in 1..=rounds {
            for (label, p) in [("direct", &direct), ("outbox", &outbox)] {
                let tag = format!("{label}{round}{}", hash_name.len());
                let cpu = cpu_with(SERVERS);
                let roles = pg_roles();
                let (run, _) = register_many(p, &tag, ROUND, CLIENTS).await;
                // Both rounds end once the probe holds their events: the
                // relay's publishing counts in the round that wrote the rows.
                expected += ROUND;
                probe.wait_for(expected, Duration::from_secs(30)).await;
                let split = cpu_per(&cpu, ROUND);
                let cpu: Duration = split.iter().sum();
                println!(
                    "| {hash_name} | {label} | {round} | {:.0}/s | {} | {} | {} ({}) |",
                    run.rate,
                    ms(run.p50),
                    ms(run.p99),
                    ms(cpu),
                    split.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(" / ")
                );
                let e = sums.entry(label).or_default();
                e.rate += run.rate;
                e.p50.push(run.p50);
                e.p99.push(run.p99);
                e.cpu.push(cpu);
                add_roles(&mut e.roles, &roles);
            }
        }
        let mean = |v: &Vec<Duration>| v.iter().sum::<Duration>() / v.len() as u32;
        let ratio =
            |o: &Vec<Duration>, d: &Vec<Duration>| mean(o).as_secs_f64() / mean(d).as_secs_f64();
        let (d, o) = (&sums["direct"], &sums["outbox"]);
        println!(
            "| {hash_name} | outbox / direct | mean of {rounds} | {:.3}× | {:.3}× | {:.3}× | {:.3}× |",
            o.rate / d.rate,
            ratio(&o.p50, &d.p50),
            ratio(&o.p99, &d.p99),
            ratio(&o.cpu, &d.cpu)
        );
        print_roles(hash_name, d, o, rounds as usize * ROUND);
    }
    expected
}

/// The delay from commit to the probe consumer, one registration at a time
/// and back to back; `expected` counts the events on the probe so far, and
/// the count after this is returned.
async fn commit_delays(probe: &Probe, token_outbox: &Path, mut expected: usize) -> usize {
    println!(
        "Delay from commit to the probe consumer (outbox: rows handed to the relay at their commit, decision 70)\n"
    );
    println!("| load | events | p50 | p99 | max | goal p99 ≤ 50 ms |");
    println!("|---|---|---|---|---|---|");
    for (label, clients, n, gap) in [
        (
            "one registration at a time, 20 ms apart",
            1,
            300,
            Duration::from_millis(20),
        ),
        ("4 clients, back to back", CLIENTS, 1000, Duration::ZERO),
    ] {
        let mut committed = HashMap::new();
        if gap.is_zero() {
            let (_, c) = register_many(token_outbox, &format!("d{clients}"), n, clients).await;
            committed = c;
        } else {
            for i in 0..n {
                let (_, c) = register_many(token_outbox, &format!("d{clients}x{i}x"), 1, 1).await;
                committed.extend(c);
                tokio::time::sleep(gap).await;
            }
        }
        expected += n;
        probe.wait_for(expected, Duration::from_secs(60)).await;
        let mut delays = probe.delays(&committed);
        delays.sort_unstable();
        let max = *delays.last().unwrap();
        let run = run_of(delays, Duration::from_secs(1));
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            run.n,
            ms(run.p50),
            ms(run.p99),
            ms(max),
            if run.p99 <= Duration::from_millis(50) {
                "met"
            } else {
                "NOT met"
            }
        );
    }

    expected
}

/// Queues `DRAIN` registrations with no relay running, then starts one
/// (its batch and workers from `OUTBOX_BENCH_BATCH`, `OUTBOX_BENCH_WORKERS`)
/// and waits until the outbox is empty: how long that took, and the config.
async fn drain(
    store: &Arc<dyn IdentityStore>,
    relay_events: Arc<EventService>,
    token_outbox: &Path,
) -> (Duration, RelayConfig) {
    let fill = Instant::now();
    let (_, _) = register_many(token_outbox, "drain", DRAIN, 16).await;
    let pending = store.outbox_backlog().await.unwrap().pending;
    assert_eq!(pending as usize, DRAIN, "the outbox holds what was written");
    println!(
        "\nRelay drain: {DRAIN} events queued in {:.1} s with no relay running; then one relay\n",
        fill.elapsed().as_secs_f64(),
    );
    let stop = CancellationToken::new();
    let t = Instant::now();
    let config = RelayConfig {
        batch: std::env::var("OUTBOX_BENCH_BATCH")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(RelayConfig::default().batch),
        workers: std::env::var("OUTBOX_BENCH_WORKERS")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(RelayConfig::default().workers),
        ..RelayConfig::default()
    };
    let relay = OutboxRelay::new(store.clone(), relay_events, config).spawn(stop.clone());
    loop {
        if store.outbox_backlog().await.unwrap().pending == 0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "the relay drains");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let relay_wall = t.elapsed();
    stop.cancel();
    relay.await.unwrap();
    (relay_wall, config)
}

/// Bare lapin publishing the last `DRAIN` outbox bodies with confirms, 256
/// in flight: how many, and the rate.
async fn bare_ceiling(pool: &PgPool, amqp: &str) -> (usize, f64) {
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new({
        let mut conn = pool.get().await.unwrap();
        #[derive(diesel::QueryableByName)]
        struct Body {
            #[diesel(sql_type = diesel::sql_types::Text)]
            body: String,
        }
        let rows: Vec<Body> = diesel::sql_query(format!(
            "SELECT body FROM outbox ORDER BY id DESC LIMIT {DRAIN}"
        ))
        .load(&mut conn)
        .await
        .unwrap();
        rows.into_iter().map(|r| r.body.into_bytes()).collect()
    });
    let (_connection, channel) = confirm_channel(amqp).await.unwrap();
    let channel = Arc::new(channel);
    let t = Instant::now();
    stream::iter(0..bodies.len())
        .map(|i| {
            let channel = channel.clone();
            let bodies = bodies.clone();
            async move {
                let confirm = channel
                    .basic_publish(
                        EVENTS_EXCHANGE.into(),
                        ROUTING_KEY.into(),
                        BasicPublishOptions::default(),
                        &bodies[i],
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                assert!(confirm.is_ack());
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
    let bare_rate = bodies.len() as f64 / t.elapsed().as_secs_f64();
    (bodies.len(), bare_rate)
}

/// The drain table: the relay next to bare lapin.
fn print_drain(
    config: &RelayConfig,
    relay_wall: Duration,
    relay_rate: f64,
    (published, bare_rate): (usize, f64),
) {
    println!("| publisher | events | time | rate | share of bare lapin | goal ≥ 3 000/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| outbox relay ({} workers, batch {}: claim, publish with confirms, mark) | {DRAIN} | {:.2} s | {relay_rate:.0}/s | {:.0} % | {} |",
        config.workers,
        config.batch,
        relay_wall.as_secs_f64(),
        relay_rate / bare_rate * 100.0,
        if relay_rate >= 3000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| bare lapin (same bodies, confirms, 256 in flight) | {} | — | {bare_rate:.0}/s | 100 % | — |",
        published
    );
}
