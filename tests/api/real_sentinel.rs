//! Redis Sentinel on servers of the test's own (issue 14): a master, a
//! replica and three sentinels on 127.0.0.1. The master is SIGKILLed while
//! four at-least-once workers report items; the service follows the
//! failover without a restart, the project reaches `done == total` and
//! `job.completed` reaches the broker once.

use std::{
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fred::interfaces::{KeysInterface, ServerInterface};
use secrecy::SecretString;
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        bus::topology::EVENTS_EXCHANGE,
        redis::{RedisClients, RedisConfig, RedisDedup, RedisHealth, RedisSentinel},
        system::{RandomIds, SystemClock},
    },
    domain::{
        events::{EventData, EventEnvelope},
        progress::{ItemId, ProgressService, ProgressView, ProjectId, ProjectStatus},
    },
    ports::{Claim, DedupStore, HealthIndicator},
};
use uuid::Uuid;

use crate::{
    real_amqp::events,
    servers::{Probe, amqp_url, free_port, message_id, redis, services, services_script},
};

/// Items of the project: enough that the kill lands mid-run.
const TOTAL: usize = 1_500;
/// The master is killed once this many items are reported.
const KILL_AFTER: usize = 300;
const WORKERS: usize = 4;
/// The bound on the time without writes after the kill.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);
/// A worker that cannot report an item within this gives up (the test fails).
const ITEM_DEADLINE: Duration = Duration::from_secs(60);
/// The data nodes' and the sentinels' passwords differ, so the test sees
/// that each goes where it belongs (fred's `sentinel-auth`).
const DATA_PASSWORD: &str = "smap";
const SENTINEL_PASSWORD: &str = "guest";

/// The five servers; stopped when dropped, also when an assertion fails.
struct SentinelServers {
    dir: String,
    master: u16,
    replica: u16,
    sentinels: [u16; 3],
}

impl SentinelServers {
    fn start() -> SentinelServers {
        let dir = std::env::temp_dir()
            .join(format!("smap-sentinel-{}", Uuid::new_v4().simple()))
            .to_string_lossy()
            .into_owned();
        let servers = SentinelServers {
            dir,
            master: free_port(),
            replica: free_port(),
            sentinels: [free_port(), free_port(), free_port()],
        };
        let ports = [
            servers.master,
            servers.replica,
            servers.sentinels[0],
            servers.sentinels[1],
            servers.sentinels[2],
        ]
        .map(|p| p.to_string());
        let started = Instant::now();
        let status = Command::new("bash")
            .arg(services_script())
            .arg("redis-sentinel-start")
            .arg(&servers.dir)
            .args(&ports)
            .env("REDIS_PASSWORD", DATA_PASSWORD)
            .env("REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD)
            .status()
            .expect("run services.sh");
        assert!(status.success(), "redis-sentinel-start failed");
        eprintln!(
            "master {} + replica {} + sentinels {:?} ready in {:?}",
            servers.master,
            servers.replica,
            servers.sentinels,
            started.elapsed()
        );
        servers
    }

    fn settings(&self) -> RedisConfig {
        RedisConfig {
            host: String::new(),
            port: 0,
            password: Some(SecretString::from(DATA_PASSWORD)),
            state_db: 1,
            sentinel: Some(RedisSentinel {
                sentinels: self
                    .sentinels
                    .iter()
                    .map(|p| ("127.0.0.1".to_owned(), *p))
                    .collect(),
                master: "smap".to_owned(),
                password: Some(SecretString::from(SENTINEL_PASSWORD)),
            }),
        }
    }

    fn kill_master(&self) {
        services(&["redis-sentinel-kill", &self.dir, &self.master.to_string()]);
    }
}

impl Drop for SentinelServers {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(services_script())
            .args(["redis-sentinel-stop", &self.dir])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn project_of(delivery: &lapin::message::Delivery) -> Option<String> {
    match EventEnvelope::from_json(&delivery.data).ok()?.data {
        EventData::JobCompleted(p) => Some(p.project_id.to_string()),
        _ => None,
    }
}

/// What the workers saw of the failover.
#[derive(Default)]
struct Watch {
    /// When the master was killed.
    killed: Option<Instant>,
    /// The earliest end of a report that started after the kill and
    /// succeeded: writes work again (on the new master: fred only uses a
    /// server whose ROLE is master).
    first_ok_after_kill: Option<Duration>,
    failed_calls: usize,
    /// The completion's event id, as each completing answer gave it.
    event_ids: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_redis_master_is_followed_through_sentinel_and_the_project_completes_once() {
    // The shared servers tell that redis-server and RabbitMQ are there.
    let (Some(url), Some(_)) = (amqp_url(), redis()) else {
        return;
    };
    let started = Instant::now();
    let servers = SentinelServers::start();
    let settings = servers.settings();
    let clients = RedisClients::connect(&settings).await.expect("clients");
    let primary = clients.state.next().sentinel_primary().expect("a master");
    assert_eq!(primary.port, servers.master, "the sentinels' master");
    let dedup = RedisDedup::new(clients.cache.clone());
    let lease = Duration::from_secs(60);
    assert_eq!(
        dedup.claim("sentinel:before", "t", lease).await.unwrap(),
        Claim::Acquired
    );

    let broker = AmqpBroker::connect(&url, AmqpConfig::default()).await;
    let mut probe = Probe::bind(&url, EVENTS_EXCHANGE, "job.#").await;
    let service = Arc::new(ProgressService::new(
        // As the service wires it: new completions wait for the replica.
        Arc::new(clients.progress_store(&settings)),
        Arc::new(events(Arc::new(AmqpEventPublisher::new(broker.clone())))),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
    ));
    let project = ProjectId::parse(&format!("sentinel-{}", Uuid::new_v4().simple())).unwrap();
    service.init_project(&project).await.unwrap();
    service
        .set_total(&project, TOTAL as u64, ProjectStatus::Processing)
        .await
        .unwrap();

    let next = Arc::new(AtomicUsize::new(0));
    let reported = Arc::new(AtomicUsize::new(0));
    let watch = Arc::new(Mutex::new(Watch::default()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (service, project) = (service.clone(), project.clone());
            let (next, reported, watch) = (next.clone(), reported.clone(), watch.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= TOTAL {
                        return;
                    }
                    let item = ItemId::parse(&format!("item-{n}")).unwrap();
                    let first_try = Instant::now();
                    // At least once: the same item again until it is
                    // acknowledged, as a message redelivered would be.
                    loop {
                        let call = Instant::now();
                        let result = service
                            .mark_item_done(&project, n % 50 == 0, Some(&item))
                            .await;
                        // The guard ends with this block, before the await.
                        let reported_now = {
                            let mut w = watch.lock().unwrap();
                            match result {
                                Ok(update) => {
                                    if let Some(killed) = w.killed
                                        && call > killed
                                    {
                                        let at = killed.elapsed();
                                        w.first_ok_after_kill =
                                            Some(w.first_ok_after_kill.map_or(at, |f| f.min(at)));
                                    }
                                    if let Some(completion) = &update.completion {
                                        w.event_ids.push(completion.event_id.to_string());
                                    }
                                    true
                                }
                                Err(e) => {
                                    w.failed_calls += 1;
                                    assert!(
                                        first_try.elapsed() < ITEM_DEADLINE,
                                        "item {n} not reported within {ITEM_DEADLINE:?}: {e}"
                                    );
                                    false
                                }
                            }
                        };
                        if reported_now {
                            reported.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();

    // Plain writes every 20 ms beside the workers: when fred itself writes
    // again, apart from the progress store's retry schedule (1 s, 2 s, 4 s).
    let stop_probe = Arc::new(AtomicBool::new(false));
    let raw_writes = {
        let (pool, stop, watch) = (clients.state.clone(), stop_probe.clone(), watch.clone());
        tokio::spawn(async move {
            let mut first_ok = None;
            while !stop.load(Ordering::SeqCst) && first_ok.is_none() {
                let call = Instant::now();
                let ok = pool.next().incr::<i64, _>("sentinel:probe").await.is_ok();
                let killed = watch.lock().unwrap().killed;
                if let Some(killed) = killed
                    && ok
                    && call > killed
                {
                    first_ok = Some(killed.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            first_ok
        })
    };

    while reported.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    servers.kill_master();
    let killed = Instant::now();
    watch.lock().unwrap().killed = Some(killed);
    let reported_at_kill = reported.load(Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("worker");
    }
    let all_reported = killed.elapsed();
    stop_probe.store(true, Ordering::SeqCst);
    let raw_recovered = raw_writes.await.expect("probe");

    // A completion whose publish failed in the outage is the relay's.
    service.relay_completions().await.expect("relay round");
    let id = project.to_string();
    let published = probe
        .collect(Duration::from_secs(5), 2, |d| {
            project_of(d).as_deref() == Some(id.as_str())
        })
        .await;
    let progress = service.get_progress(&project).await.unwrap();
    let new_primary = clients.state.next().sentinel_primary().expect("a master");
    let dedup_after = dedup.claim("sentinel:after", "t", lease).await;
    let dedup_before = dedup.claim("sentinel:before", "t", lease).await;
    let health = RedisHealth::new(clients.state.clone(), 1).check().await;

    // Taken out of the mutex: no guard is held across the awaits below.
    let w = std::mem::take(&mut *watch.lock().unwrap());
    let recovered = w
        .first_ok_after_kill
        .expect("a report succeeded after the kill");
    eprintln!(
        "Sentinel failover: master {} SIGKILLed after {reported_at_kill} of {TOTAL} items; \
         fred writes again after {raw_recovered:?}, progress calls (retrying 1 s, 2 s, 4 s) \
         after {recovered:?} (master now {new_primary}); {} failed calls; \
         all items reported {all_reported:?} after the kill; job.completed × {}; \
         test took {:?} before the stop",
        servers.master,
        w.failed_calls,
        published.len(),
        started.elapsed()
    );
    let raw_recovered = raw_recovered.expect("a plain write succeeded after the kill");
    assert!(
        raw_recovered < RECOVERY_BOUND,
        "fred wrote nothing for {raw_recovered:?} after the kill"
    );
    assert!(
        recovered < RECOVERY_BOUND,
        "writes failed for {recovered:?} after the kill"
    );
    assert_eq!(new_primary.port, servers.replica, "the replica is promoted");
    match progress {
        ProgressView::Found(p) => {
            assert_eq!((p.done, p.total), (TOTAL as u64, TOTAL as u64), "{p:?}");
            assert_eq!(p.status, ProjectStatus::Done, "{p:?}");
            assert_eq!(p.errors, (TOTAL / 50) as u64, "{p:?}");
        }
        ProgressView::NotFound => panic!("the project is lost"),
    }
    assert_eq!(published.len(), 1, "exactly one job.completed");
    assert!(!w.event_ids.is_empty(), "no report answered COMPLETED");
    for event_id in &w.event_ids {
        assert_eq!(*event_id, message_id(&published[0]), "one event id");
    }
    assert_eq!(
        health.details["sentinel_master"],
        format!("127.0.0.1:{}", servers.replica),
        "{health:?}"
    );
    // The de-duplication client follows the failover too.
    assert_eq!(
        dedup_after.expect("dedup after the failover"),
        Claim::Acquired
    );
    dedup_before.expect("dedup after the failover");
    broker.close().await;
    clients.shutdown().await;
}
