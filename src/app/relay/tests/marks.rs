//! When the hand-off's batched marks are due (decisions 72, 74).

use std::sync::atomic::Ordering;

use super::{handoff::Accepts, register, relay_config, service};
use crate::{
    adapters::memory::InMemoryIdentityStore,
    app::relay::{OutboxRelay, RelayConfig},
    ports::IdentityStore,
};
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

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
    let store = Arc::new(InMemoryIdentityStore::new());
    let publisher = Arc::new(Accepts::default());
    let stop = CancellationToken::new();
    let relay =
        OutboxRelay::new(store.clone(), service(publisher.clone()), config).spawn(stop.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;

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
