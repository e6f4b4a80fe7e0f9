//! The relay against a publisher that hangs: a pass is bounded by its
//! lease (decision 64).

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures_util::future::join_all;
use uuid::Uuid;

use super::*;
use crate::{
    adapters::{
        memory::{InMemoryIdentityStore, InMemoryPlanCatalog},
        system::{RandomIds, SystemClock},
    },
    domain::events::{EventId, SealedEvent},
    ports::{
        EventPublisher, OutboxEvent, PublishError,
        suites::identity_store::{now, unverified, verification},
    },
};

/// Its first publish never answers (a broker that stops reading, a
/// query that never returns: the pass hangs); the others succeed.
#[derive(Default)]
struct HangsOnce(AtomicUsize);

#[async_trait]
impl EventPublisher for HangsOnce {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        Ok(event.event_id())
    }
}

#[tokio::test]
async fn a_pass_that_hangs_is_abandoned_after_its_lease_and_the_row_still_goes_out() {
    // Arrange: one row, a relay whose first publish never returns.
    let store = Arc::new(InMemoryIdentityStore::new());
    let user = unverified("hang@example.com", now());
    let event = verification(&user);
    store
        .insert_user_enqueue(&user, &[OutboxEvent::user(user.id, event)])
        .await
        .unwrap();
    let publisher = Arc::new(HangsOnce::default());
    let events = Arc::new(EventService::new(
        publisher.clone(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    ));
    let config = RelayConfig {
        lease: Duration::from_millis(300),
        poll: Duration::from_millis(20),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        workers: 1,
        ..RelayConfig::default()
    };
    let stop = CancellationToken::new();

    // Act
    let relay = OutboxRelay::new(store.clone(), events, config).spawn(stop.clone());
    let started = std::time::Instant::now();
    while store.outbox_backlog().await.unwrap().pending > 0
        && started.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(2), relay).await;

    // Assert: published by a later pass, once the hung one was dropped;
    // and the relay still stops when told.
    assert!(stopped.is_ok(), "the relay stops: no pass holds it");
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    assert_eq!(
        publisher.0.load(Ordering::SeqCst),
        2,
        "hung once, then sent"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "after the lease"
    );
}

fn service(publisher: Arc<dyn EventPublisher>) -> Arc<EventService> {
    Arc::new(EventService::new(
        publisher,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    ))
}

/// Fails every third publish (the broker refusing now and then); records
/// the event ids it accepted, in the order it accepted them.
#[derive(Default)]
struct FailsEveryThird {
    calls: AtomicUsize,
    accepted: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl EventPublisher for FailsEveryThird {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.calls.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
            return Err(PublishError::Unavailable(anyhow::anyhow!("refused")));
        }
        let id = event.event_id();
        self.accepted.lock().unwrap().push(id.to_string());
        Ok(id)
    }
}

/// Registers `name`@example.com: one verification event, handed over
/// when the relay takes rows.
async fn register(store: &InMemoryIdentityStore, name: &str) {
    let user = unverified(&format!("{name}@example.com"), now());
    let event = verification(&user);
    store
        .insert_user_enqueue(&user, &[OutboxEvent::user(user.id, event)])
        .await
        .unwrap();
}

/// A relay with `config` on `publisher`, running on a fresh in-memory
/// store for 50 ms (its link open): the store, the stop, the task.
async fn running(
    config: RelayConfig,
    publisher: Arc<dyn EventPublisher>,
) -> (
    Arc<InMemoryIdentityStore>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let store = Arc::new(InMemoryIdentityStore::new());
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(store.clone(), service(publisher), config).spawn(stop.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    (store, stop, relay)
}

fn relay_config() -> RelayConfig {
    RelayConfig {
        poll: Duration::from_millis(20),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..RelayConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_over_and_claimed_rows_go_out_once_each_in_order_per_aggregate() {
    // Arrange: a relay on a publisher that refuses every third publish;
    // three aggregates, each written 20 times in turn (as their row locks
    // order them), all three at once.
    let store = Arc::new(InMemoryIdentityStore::new());
    let publisher = Arc::new(FailsEveryThird::default());
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(store.clone(), service(publisher.clone()), relay_config())
        .spawn(stop.clone());

    // Act
    let writers = (0..3).map(|a| {
        let store = store.clone();
        tokio::spawn(async move {
            let aggregate = Uuid::new_v4();
            let mut written = Vec::new();
            for i in 0..20 {
                let user = unverified(&format!("order-{a}-{i}@example.com"), now());
                let event = verification(&user);
                written.push(event.event_id().to_string());
                store
                    .insert_user_enqueue(&user, &[OutboxEvent::user(aggregate, event)])
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
            written
        })
    });
    let written: Vec<Vec<String>> = join_all(writers)
        .await
        .into_iter()
        .map(|w| w.unwrap())
        .collect();
    let started = std::time::Instant::now();
    while store.outbox_backlog().await.unwrap().pending > 0
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    relay.await.unwrap();

    // Assert: every event accepted once, and each aggregate's in the order
    // written, though a third of the publishes failed.
    let accepted = publisher.accepted.lock().unwrap().clone();
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    assert_eq!(accepted.len(), 60, "once each: {accepted:?}");
    assert!(publisher.calls.load(Ordering::SeqCst) > 60, "some failed");
    for events in &written {
        let order: Vec<&String> = accepted.iter().filter(|e| events.contains(e)).collect();
        assert_eq!(order, events.iter().collect::<Vec<_>>(), "in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_handed_over_before_a_stop_are_published_before_the_relay_ends() {
    // Arrange: a relay whose publishes take 5 ms each.
    #[derive(Default)]
    struct Slow(AtomicUsize);
    #[async_trait]
    impl EventPublisher for Slow {
        async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(event.event_id())
        }
    }
    let store = Arc::new(InMemoryIdentityStore::new());
    let publisher = Arc::new(Slow::default());
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(store.clone(), service(publisher.clone()), relay_config())
        .spawn(stop.clone());
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Act: 30 registrations (each handed over), then the stop at once.
    for i in 0..30 {
        register(&store, &format!("stop-{i}")).await;
    }
    stop.cancel();
    relay.await.unwrap();

    // Assert
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    assert_eq!(publisher.0.load(Ordering::SeqCst), 30);
}

mod handoff;
mod marks;
