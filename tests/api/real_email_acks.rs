//! Batched acks on real RabbitMQ: deliveries finishing out of order are
//! acked in runs (`multiple`), never twice, never past a delivery still in
//! flight, and all of them before a graceful stop closes the channel —
//! counted by claims per event (a redelivery would claim again) and by the
//! queue's depth after the stop (an unacked message would be back in it).

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures_util::{StreamExt, stream};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher, ConsumerConfig},
        bus::topology::EMAIL_QUEUE,
        memory::{InMemoryDedup, InMemoryMailer},
    },
    domain::locale::Locale,
    ports::{Claim, DedupError, DedupStore, MailError, Mailer, Marked, OutgoingEmail},
};

use crate::{
    real_amqp::{events, verification},
    real_email_lease::{envelope_consumers, queue_depth},
    servers::{Vhost, amqp_url},
};

/// Sends after 0–7 ms, so deliveries finish out of their order.
struct JitterMailer {
    inner: InMemoryMailer,
    hasher: RandomState,
}

#[async_trait]
impl Mailer for JitterMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let jitter = self.hasher.hash_one(&email.message_id) % 8;
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        self.inner.send(email).await
    }
}

/// Counts the claims of each event: a message redelivered (its ack lost,
/// its channel closed) is claimed a second time.
#[derive(Default)]
struct CountingDedup {
    inner: InMemoryDedup,
    claims: Mutex<HashMap<String, usize>>,
}

#[async_trait]
impl DedupStore for CountingDedup {
    async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim, DedupError> {
        *self
            .claims
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default() += 1;
        self.inner.claim(key, owner, lease).await
    }
    async fn mark_sent(&self, key: &str, owner: &str, ttl: Duration) -> Result<Marked, DedupError> {
        self.inner.mark_sent(key, owner, ttl).await
    }
    async fn release(&self, key: &str, owner: &str) -> Result<bool, DedupError> {
        self.inner.release(key, owner).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_emails_finishing_out_of_order_are_each_sent_once_and_all_acked_before_a_stop()
{
    let Some(amqp) = amqp_url() else { return };
    let vhost = Vhost::new(&amqp, "batched-acks");
    let broker = AmqpBroker::connect(&vhost.url, AmqpConfig::default()).await;
    let mailer = Arc::new(JitterMailer {
        inner: InMemoryMailer::new(),
        hasher: RandomState::new(),
    });
    let dedup = Arc::new(CountingDedup::default());
    let publisher = events(Arc::new(AmqpEventPublisher::new(broker.clone())));
    let n = 2_000;

    // Published before the consumers start: a full queue, 32 prefetched.
    stream::iter(0..n)
        .map(|_| publisher.publish(verification(Locale::En)))
        .buffer_unordered(64)
        .for_each(|published| async move {
            published.unwrap();
        })
        .await;
    let config = ConsumerConfig {
        prefetch: 32,
        concurrency: 16,
        drain_timeout: Duration::from_secs(5),
    };
    let consumers = envelope_consumers(&broker, mailer.clone(), dedup.clone(), config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while mailer.inner.sent().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumers.stop().await;

    let sent = mailer.inner.sent();
    let distinct: HashSet<&str> = sent.iter().map(|e| e.message_id.as_str()).collect();
    let claims = dedup.claims.lock().unwrap().clone();
    let claimed_twice = claims.values().filter(|c| **c > 1).count();
    assert_eq!(distinct.len(), n, "every e-mail sent");
    assert_eq!(sent.len(), n, "none twice");
    assert_eq!(claims.len(), n, "every event claimed");
    assert_eq!(claimed_twice, 0, "no message delivered twice");
    assert_eq!(
        queue_depth(&vhost.url, EMAIL_QUEUE).await,
        0,
        "every message acked before the stop closed the channel"
    );
    broker.close().await;
}
