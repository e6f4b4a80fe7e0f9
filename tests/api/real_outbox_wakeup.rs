//! How the relay hears of new outbox rows on real PostgreSQL: its own
//! process's rows are handed over at their commit (decision 70); rows left
//! to the claim come through `LISTEN/NOTIFY`, from another process's
//! commits and from its own (which do not wake it a second time in-process
//! while the listener is up). The relay polls only once a minute here, so
//! an event published within a second was not polled; the wake-ups are
//! counted; and the rows a dead process claimed go out once its claim ends.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use smap_identity::{
    adapters::postgres::{self, PgIdentityStore},
    app::relay::{OutboxRelay, RelayConfig},
    domain::{
        events::{EventEnvelope, EventId, SealedEvent},
        locale::Locale,
        timestamp::Timestamp,
    },
    ports::{EventPublisher, IdentityStore, OutboxEvent, PublishError},
    test_support::events::{event_service, verification},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{real_postgres::user, servers::fresh_database};

/// Records when each event id was published.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Instant)>>);

#[async_trait]
impl EventPublisher for Recorder {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        let id = event.event_id();
        self.0
            .lock()
            .unwrap()
            .push((id.to_string(), Instant::now()));
        Ok(id)
    }
}

/// Registers `email` through `store` with one outbox row; its event id and
/// the instant the commit returned.
async fn register(store: &PgIdentityStore, email: &str) -> (String, Instant) {
    let user = user(email);
    let event = EventEnvelope::new(
        EventId::from_uuid(Uuid::new_v4()),
        Timestamp::new(Utc::now()),
        verification(Locale::En),
    )
    .seal()
    .unwrap();
    store
        .insert_user_enqueue(&user, &[OutboxEvent::user(user.id, event.clone())])
        .await
        .unwrap();
    (event.event_id().to_string(), Instant::now())
}

/// How long after `committed` the recorder saw `id` (at most 5 s).
async fn delay(recorder: &Recorder, id: &str, committed: Instant) -> Option<Duration> {
    while committed.elapsed() < Duration::from_secs(5) {
        let seen = recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| e == id)
            .map(|(_, at)| *at);
        if let Some(at) = seen {
            return Some(at - committed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Until the listener's connection has run `LISTEN` (at most 10 s).
async fn listening(url: &str) {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let started = Instant::now();
    loop {
        let listeners = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND query = 'LISTEN outbox'",
        )
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n;
        if listeners > 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no listener");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A store on `url`'s database (pool of 2), migrated.
async fn migrated_store(url: &str) -> PgIdentityStore {
    let pool = postgres::pool(url, 2).unwrap();
    postgres::migrate(&pool).await.unwrap();
    PgIdentityStore::new(pool)
}

/// Counts the wake-ups `store`'s relay would get, until `stop`.
fn count_wakeups(store: &PgIdentityStore, stop: CancellationToken) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let link = store.outbox_link();
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = link.wakeup().notified() => { counted.fetch_add(1, Ordering::SeqCst); }
            }
        }
    });
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_its_own_relay_once_with_or_without_the_listener() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let store = migrated_store(&url).await;
    let stop = CancellationToken::new();
    let wakeups = count_wakeups(&store, stop.clone());
    let settle = || tokio::time::sleep(Duration::from_millis(300));

    // No listener: the in-process wake-up, once per commit.
    for i in 0..3 {
        register(&store, &format!("alone{i}@once.example")).await;
        settle().await;
    }
    let alone = wakeups.swap(0, Ordering::SeqCst);
    // The listener up: the commit's own NOTIFY, once per commit — not the
    // in-process wake-up too (decision 66).
    let listener = store.spawn_listener(url.clone(), stop.clone());
    listening(&url).await;
    settle().await;
    wakeups.store(0, Ordering::SeqCst);
    for i in 0..3 {
        register(&store, &format!("heard{i}@once.example")).await;
        settle().await;
    }
    let heard = wakeups.swap(0, Ordering::SeqCst);
    stop.cancel();
    listener.await.unwrap();

    assert_eq!(alone, 3, "one in-process wake-up per commit");
    assert_eq!(heard, 3, "one NOTIFY per commit, no second wake-up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_its_own_commits_at_once_and_is_woken_by_another_processs() {
    // Arrange: a relay (two loops, as in `serve`) polling once a minute on
    // its store with the listener up; a second store on the same database
    // stands for another process. Our commits are handed over (decision
    // 70), theirs arrive by NOTIFY.
    let Some(url) = fresh_database().await else {
        return;
    };
    let pool = postgres::pool(&url, 4).unwrap();
    postgres::migrate(&pool).await.unwrap();
    let ours = Arc::new(PgIdentityStore::new(pool.clone()));
    let theirs = PgIdentityStore::new(postgres::pool(&url, 2).unwrap());
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let listener = ours.spawn_listener(url.clone(), stop.clone());
    let config = RelayConfig {
        poll: Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let relay = OutboxRelay::new(
        ours.clone(),
        Arc::new(event_service(recorder.clone())),
        config,
    )
    .spawn(stop.clone());
    listening(&url).await;

    // Act: three commits from each side, one at a time.
    let mut delays = Vec::new();
    for i in 0..3 {
        for (side, store) in [("ours", ours.as_ref()), ("theirs", &theirs)] {
            let (id, committed) = register(store, &format!("{side}{i}@wake.example")).await;
            delays.push((side, delay(&recorder, &id, committed).await));
        }
    }
    stop.cancel();
    relay.await.unwrap();
    listener.await.unwrap();

    // Assert: each published once, well before the poll would have.
    eprintln!("commit → publish: {delays:?}");
    for (side, d) in &delays {
        let d = d.unwrap_or_else(|| panic!("{side}: not published within 5 s: {delays:?}"));
        assert!(
            d < Duration::from_secs(1),
            "{side}: {d:?} (woken, not polled)"
        );
    }
    let published = recorder.0.lock().unwrap().len();
    assert_eq!(published, 6, "each row once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_dead_process_claimed_at_commit_go_out_once_when_its_claim_runs_out() {
    // Arrange: "ours" has a relay taking rows (its link open, a 2 s lease)
    // that dies with the process: what it is handed is never published.
    // Another process's relay polls every 100 ms.
    let Some(url) = fresh_database().await else {
        return;
    };
    let ours = migrated_store(&url).await;
    ours.outbox_link().open(chrono::Duration::seconds(2));
    let theirs = Arc::new(PgIdentityStore::new(postgres::pool(&url, 2).unwrap()));
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let config = RelayConfig {
        poll: Duration::from_millis(100),
        ..RelayConfig::default()
    };
    let relay = OutboxRelay::new(theirs, Arc::new(event_service(recorder.clone())), config)
        .spawn(stop.clone());

    // Act: five registrations; what they hand over dies with "ours".
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(register(&ours, &format!("dead{i}@handoff.example")).await);
    }
    let handed = ours.outbox_link().take(usize::MAX, chrono::Utc::now()).rows;
    let mut published = Vec::new();
    for (id, committed) in &written {
        published.push(delay(&recorder, id, *committed).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    relay.await.unwrap();

    // Assert: claimed at commit (not NOTIFYed, not claimable at once), then
    // published by the other relay once the claim ran out, once each.
    assert_eq!(handed.len(), 5, "each row handed over at its commit");
    eprintln!("commit → publish by the other relay: {published:?}");
    for d in &published {
        let d = d.expect("published within 5 s");
        assert!(
            d >= Duration::from_millis(1_800),
            "not before the claim ran out: {d:?}"
        );
    }
    assert_eq!(recorder.0.lock().unwrap().len(), 5, "once each");
}
