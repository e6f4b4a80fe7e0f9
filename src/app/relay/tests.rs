//! The relay against a publisher that hangs: a pass is bounded by its
//! lease (decision 64).

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

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
