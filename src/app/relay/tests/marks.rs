//! When the hand-off's batched marks are due, and a stop while one
//! stalls (decisions 71, 72, 74).

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::{handoff::Accepts, register, relay_config, running};
use crate::{
    app::relay::RelayConfig,
    domain::events::{EventId, SealedEvent},
    ports::{EventPublisher, IdentityStore, PublishError},
};
use std::{sync::Arc, time::Duration};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_is_due_before_the_claim_ends_however_long_marks_may_wait() {
    // Arrange: a 3 s lease, claim loops polling every 20 ms, and marks
    // that may wait 10 s after a confirm.
    let lease = Duration::from_secs(3);
    let config = RelayConfig {
        lease,
        workers: 1,
        mark_every: Duration::from_secs(10),
        ..relay_config()
    };
    let publisher = Arc::new(Accepts::default());
    let (store, stop, relay) = running(config, publisher.clone()).await;

    // Act: one row handed over, then longer than its claim.
    register(&store, "capped").await;
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    let backlog = store.outbox_backlog().await.unwrap().pending;
    stop.cancel();
    relay.await.unwrap();

    // Assert: marked a fifth of the lease before its claim ended (2.4 s),
    // so no claim loop took it again (at 10 s, it went out twice at 3 s).
    assert_eq!(backlog, 0);
    assert_eq!(publisher.0.load(Ordering::SeqCst), 1);
}

/// Accepts the first publish; never answers the others.
#[derive(Default)]
struct AcceptsFirst(AtomicUsize);

#[async_trait]
impl EventPublisher for AcceptsFirst {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        if self.0.fetch_add(1, Ordering::SeqCst) > 0 {
            std::future::pending::<()>().await;
        }
        Ok(event.event_id())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_mark_that_stalls_still_ends_within_two_thirds_of_the_lease() {
    // Arrange: a 3 s lease; marks stall for 10 s (each is cut off at its
    // bound: a third of the lease); row 1 published at once, its mark due
    // 50 ms later; row 2's publish never answers (its take in flight).
    let lease = Duration::from_secs(3);
    let config = RelayConfig {
        lease,
        workers: 1,
        ..relay_config()
    };
    let publisher = Arc::new(AcceptsFirst::default());
    let (store, stop, relay) = running(config, publisher.clone()).await;
    store.stall_marks_until(chrono::Utc::now() + chrono::Duration::seconds(10));
    register(&store, "marked").await;
    register(&store, "hangs").await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Act: the stop comes while the first mark stalls.
    let asked = std::time::Instant::now();
    stop.cancel();
    let stopped = tokio::time::timeout(lease * 2, relay).await;
    let took = asked.elapsed();

    // Assert: the take in flight got a third of the lease from the stop,
    // not from the end of the mark (then the relay ended ~2.4 s after the
    // stop), and the stop's own marks their twelfths: within two thirds.
    assert!(stopped.is_ok(), "the relay stops");
    assert!(
        took < lease * 2 / 3 + Duration::from_millis(100),
        "took {took:?}"
    );
    assert_eq!(
        publisher.0.load(Ordering::SeqCst),
        2,
        "one accepted, one hung"
    );
}
