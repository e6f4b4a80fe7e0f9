//! The hand-off loop against brokers that hang or are slow: a stop is
//! bounded, published rows are marked before their claim ends, and a row
//! left to the claim behind one of them goes out at the mark.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use uuid::Uuid;

use super::{register, relay_config, running, service};
use crate::{
    adapters::memory::InMemoryIdentityStore,
    app::relay::{OutboxRelay, RelayConfig},
    domain::events::{EventId, SealedEvent},
    ports::{
        EventPublisher, IdentityStore, OutboxEvent, PublishError,
        suites::identity_store::{now, unverified, verification},
    },
};
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

/// Never answers: a broker that stopped reading.
struct Hangs;

#[async_trait]
impl EventPublisher for Hangs {
    async fn publish(&self, _: &SealedEvent) -> Result<EventId, PublishError> {
        std::future::pending().await
    }
}

/// Accepts every publish and counts them.
#[derive(Default)]
pub(super) struct Accepts(pub(super) AtomicUsize);

#[async_trait]
impl EventPublisher for Accepts {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(event.event_id())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_a_third_of_the_lease_for_deliveries_that_hang_and_loses_no_row() {
    // Arrange: a 3 s lease and a broker that never answers; one row left
    // to the claim (written before the relay ran), three handed over.
    let lease = Duration::from_secs(3);
    let config = RelayConfig {
        lease,
        workers: 1,
        ..relay_config()
    };
    let store = Arc::new(InMemoryIdentityStore::new());
    register(&store, "claimed").await;
    let stop = CancellationToken::new();
    let relay =
        OutboxRelay::new(store.clone(), service(Arc::new(Hangs)), config).spawn(stop.clone());
    for i in 0..3 {
        register(&store, &format!("handed-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Act
    let asked = std::time::Instant::now();
    stop.cancel();
    let stopped = tokio::time::timeout(lease * 2, relay).await;
    let took = asked.elapsed();

    // Assert: the claim pass and the takes in flight (the three handed
    // rows, decision 74) were cut off a third of the lease after the stop,
    // not at their lease (2.5–3 s from here).
    assert!(stopped.is_ok(), "the relay stops");
    assert!(
        took >= lease / 3 - Duration::from_millis(50)
            && took < lease * 2 / 3 + Duration::from_millis(100),
        "stopped {took:?} after the stop"
    );
    assert_eq!(
        store.outbox_backlog().await.unwrap().pending,
        4,
        "nothing marked"
    );

    // Act: another relay, on a broker that answers.
    let publisher = Arc::new(Accepts::default());
    let stop = CancellationToken::new();
    let relay =
        OutboxRelay::new(store.clone(), service(publisher.clone()), config).spawn(stop.clone());
    let started = std::time::Instant::now();
    while store.outbox_backlog().await.unwrap().pending > 0 && started.elapsed() < lease * 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    relay.await.unwrap();

    // Assert: once their claims ran out, every row went out once.
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    assert_eq!(publisher.0.load(Ordering::SeqCst), 4);
}

/// Accepts every publish, the first only after `slow`; never answers for
/// the event ids in `hang`, refuses those in `refuse`; records the ids it
/// accepted.
#[derive(Default)]
struct Scripted {
    slow: Duration,
    calls: AtomicUsize,
    hang: std::sync::Mutex<Vec<String>>,
    refuse: std::sync::Mutex<Vec<String>>,
    accepted: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl EventPublisher for Scripted {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        let id = event.event_id();
        if self.hang.lock().unwrap().contains(&id.to_string()) {
            std::future::pending::<()>().await;
        }
        if self.refuse.lock().unwrap().contains(&id.to_string()) {
            return Err(PublishError::Nacked);
        }
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            tokio::time::sleep(self.slow).await;
        }
        self.accepted.lock().unwrap().push(id.to_string());
        Ok(id)
    }
}

/// Writes one row of `aggregate`; returns its event id.
async fn write(store: &InMemoryIdentityStore, name: &str, aggregate: Uuid) -> String {
    let user = unverified(&format!("{name}@example.com"), now());
    let event = verification(&user);
    let id = event.event_id().to_string();
    store
        .insert_user_enqueue(&user, &[OutboxEvent::user(aggregate, event)])
        .await
        .unwrap();
    id
}

/// A running relay whose claim loops poll only every 10 s (only a mark's
/// ring wakes them in time) and whose first publish takes 300 ms.
struct SlowFirst {
    store: Arc<InMemoryIdentityStore>,
    publisher: Arc<Scripted>,
    stop: CancellationToken,
    relay: tokio::task::JoinHandle<()>,
}

impl SlowFirst {
    async fn start() -> SlowFirst {
        let config = RelayConfig {
            poll: Duration::from_secs(10),
            ..relay_config()
        };
        let publisher = Arc::new(Scripted {
            slow: Duration::from_millis(300),
            ..Scripted::default()
        });
        let (store, stop, relay) = running(config, publisher.clone()).await;
        SlowFirst {
            store,
            publisher,
            stop,
            relay,
        }
    }

    /// Two rows of one aggregate 5 ms apart: the second is surely left to
    /// the claim behind the first (still being published). Their event ids.
    async fn write_pair(&self, name: &str) -> (String, String) {
        let aggregate = Uuid::new_v4();
        let first = write(&self.store, &format!("{name}-0"), aggregate).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = write(&self.store, &format!("{name}-1"), aggregate).await;
        (first, second)
    }

    /// Waits (5 s at most) until every row was published, then stops the
    /// relay; how long after `started` the outbox was empty.
    async fn drained_since(self, started: std::time::Instant) -> Duration {
        while self.store.outbox_backlog().await.unwrap().pending > 0
            && started.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        self.stop.cancel();
        self.relay.await.unwrap();
        took
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_behind_one_published_but_not_yet_marked_goes_out_at_the_mark_not_the_poll() {
    // Arrange: the second row of the pair waits behind the first, which
    // is marked in a batch up to `mark_every` (50 ms) after its publish.
    let relay = SlowFirst::start().await;
    let (store, publisher) = (relay.store.clone(), relay.publisher.clone());

    // Act
    let started = std::time::Instant::now();
    let (first, second) = relay.write_pair("behind").await;
    let took = relay.drained_since(started).await;

    // Assert: both out, once each and in order, within the mark's delay
    // and a claim.
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    assert_eq!(*publisher.accepted.lock().unwrap(), vec![first, second]);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(1),
        "took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_handed_over_while_a_take_awaits_its_confirm_goes_out_without_waiting_for_it() {
    // Arrange: the first row's publish takes 300 ms.
    let relay = SlowFirst::start().await;
    let (store, publisher) = (relay.store.clone(), relay.publisher.clone());
    let started = std::time::Instant::now();
    let slow = write(&store, "slow", Uuid::new_v4()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Act: another aggregate's row, handed over while that take is in flight.
    let written = std::time::Instant::now();
    let quick = write(&store, "quick", Uuid::new_v4()).await;
    while !publisher.accepted.lock().unwrap().contains(&quick)
        && written.elapsed() < Duration::from_secs(2)
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let waited = written.elapsed();
    let took = relay.drained_since(started).await;

    // Assert: it went out before the slow one (decision 74; one take after
    // another, it waited for it: ~250 ms, and came second); both out once
    // and marked.
    let accepted = publisher.accepted.lock().unwrap().clone();
    assert_eq!(accepted, vec![quick, slow], "waited {waited:?}");
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_row_is_marked_before_its_claim_ends_while_a_later_take_hangs() {
    // Arrange: a 3 s lease, claim loops polling every 20 ms. Row 1 is
    // handed over at 0 s (its claim ends at 3 s) and its publish takes
    // 1.5 s; row 2 is handed over at 1 s (claim to 4 s) and its publish
    // never answers, so the take of row 2 is in flight (and hangs) when
    // row 1's mark is due at 2.5 s.
    let lease = Duration::from_secs(3);
    let config = RelayConfig {
        lease,
        workers: 1,
        // Row 1's mark is not due before the take of row 2 has started.
        mark_every: Duration::from_secs(1),
        ..relay_config()
    };
    let publisher = Arc::new(Scripted {
        slow: Duration::from_millis(1500),
        ..Scripted::default()
    });
    let (store, stop, relay) = running(config, publisher.clone()).await;

    // Act
    let first = write(&store, "marked-in-time", Uuid::new_v4()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let user = unverified("hangs@example.com", now());
    let event = verification(&user);
    publisher
        .hang
        .lock()
        .unwrap()
        .push(event.event_id().to_string());
    store
        .insert_user_enqueue(&user, &[OutboxEvent::user(user.id, event)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop.cancel();
    relay.await.unwrap();

    // Assert: row 1 was marked at its due, beside the hung take (decision
    // 74), before its claim ended, so no claim took it again (a mark that
    // waited for the take of row 2, cut off at 3.4 s, came after the claim
    // loop sent row 1 a second time at 3 s); row 2 is still there.
    assert_eq!(*publisher.accepted.lock().unwrap(), vec![first]);
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_take_marks_what_was_published_before_it_waits_for_the_takes_in_flight() {
    // Arrange: a 3 s lease, claim loops polling every 20 ms, marks due 2 s
    // after a confirm (capped at 2.4 s, a fifth of the lease before the
    // claim ends). Row 1 handed over at 0 s, confirmed at 1.5 s (claim to 3 s);
    // row 2 at 1 s, its publish never answers (its take is cut off at
    // 3.4 s); row 3 at 1.8 s, refused.
    let lease = Duration::from_secs(3);
    let config = RelayConfig {
        lease,
        workers: 1,
        mark_every: Duration::from_secs(2),
        ..relay_config()
    };
    let publisher = Arc::new(Scripted {
        slow: Duration::from_millis(1500),
        ..Scripted::default()
    });
    let (store, stop, relay) = running(config, publisher.clone()).await;
    let scripted = |list: &std::sync::Mutex<Vec<String>>, name: &str| {
        let user = unverified(&format!("{name}@example.com"), now());
        let event = verification(&user);
        list.lock().unwrap().push(event.event_id().to_string());
        (user, event)
    };

    // Act
    let first = write(&store, "published", Uuid::new_v4()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (user, event) = scripted(&publisher.hang, "hangs");
    let hung = [OutboxEvent::user(user.id, event)];
    store.insert_user_enqueue(&user, &hung).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (user, event) = scripted(&publisher.refuse, "refused");
    let refused = [OutboxEvent::user(user.id, event)];
    store.insert_user_enqueue(&user, &refused).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_2_1_s = store.outbox_backlog().await.unwrap().pending;
    tokio::time::sleep(Duration::from_millis(1400)).await;
    stop.cancel();
    relay.await.unwrap();

    // Assert: row 1 was marked at the failure (~1.8 s), not at its due
    // (2.4 s, a fifth of the lease before its claim ends) nor after the
    // hung take (3.4 s: the claim loop sent it again at 3 s); it went out
    // once; rows 2 and 3 are still there.
    assert_eq!(at_2_1_s, 2, "row 1 marked by 2.1 s");
    assert_eq!(*publisher.accepted.lock().unwrap(), vec![first]);
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mark_is_retried_twice_a_second_and_still_releases_the_write_behind_it() {
    // Arrange: marks fail for the first 1.2 s of the act.
    let relay = SlowFirst::start().await;
    let (store, publisher) = (relay.store.clone(), relay.publisher.clone());

    // Act: the blocked pair, then a write of another aggregate every 20 ms
    // while the marks fail (each is a take of its own).
    let started = std::time::Instant::now();
    store.fail_marks_until(chrono::Utc::now() + chrono::Duration::milliseconds(1200));
    let (first, second) = relay.write_pair("retried").await;
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        write(&store, &format!("stream-{i}"), Uuid::new_v4()).await;
    }
    let took = relay.drained_since(started).await;

    // Assert: every row out once, the pair in order, the blocked one at
    // the first mark that landed (~1.3 s), not the 10 s poll; and the
    // failing marks were paced 500 ms apart (with a mark forced after
    // every take, one per write of the stream: 39).
    let accepted = publisher.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 52, "{accepted:?}");
    let position = |id: &String| accepted.iter().position(|a| a == id);
    assert!(position(&first) < position(&second), "{accepted:?}");
    assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let failed = store.failed_marks();
    assert!((1..=4).contains(&failed.len()), "{failed:?}");
    for pair in failed.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= chrono::Duration::milliseconds(450), "{failed:?}");
    }
}
