//! Tests of `DeliveryService` against in-memory ports: the lease, the
//! retries, the `sent` mark and the release of abandoned deliveries.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;

use super::*;
use crate::adapters::{memory::InMemoryDedup, system::RandomIds};

fn email(id: &str) -> OutgoingEmail {
    OutgoingEmail {
        message_id: id.into(),
        to: "a@example.com".into(),
        subject: "s".into(),
        html: "h".into(),
        text: None,
        reply_to: None,
        cc: Vec::new(),
    }
}

/// Fails its first `failures` sends, hangs forever when `hang`.
#[derive(Default)]
struct Scripted {
    failures: u32,
    hang: bool,
    calls: AtomicU32,
}

#[async_trait]
impl Mailer for Scripted {
    async fn send(&self, _: &OutgoingEmail) -> Result<(), MailError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        if call < self.failures {
            return Err(MailError::Transient(anyhow::anyhow!("down")));
        }
        Ok(())
    }
}

fn service(mailer: Arc<Scripted>, dedup: Arc<InMemoryDedup>) -> DeliveryService {
    DeliveryService::new(mailer, dedup, Arc::new(RandomIds))
}

#[test]
fn the_lease_outlasts_the_longest_delivery() {
    let s = service(Arc::default(), Arc::default());
    assert_eq!(s.longest_delivery(), Duration::from_secs(4 * 10 + 7));
    assert_eq!(s.lease(), Duration::from_secs(57));
    let short = service(Arc::default(), Arc::default()).with_send_timeout(Duration::from_secs(1));
    assert_eq!(short.lease(), Duration::from_secs(4 + 7 + 10));
}

#[tokio::test]
async fn a_copy_finding_a_live_lease_is_busy_and_a_duplicate_once_sent() {
    let dedup = Arc::new(InMemoryDedup::new());
    let s = service(Arc::default(), dedup.clone());
    let key = "smap:email:sent:evt_1";
    dedup.claim(key, "other", s.lease()).await.unwrap();

    match s.deliver(&email("evt_1")).await.unwrap() {
        DeliveryOutcome::Busy { retry_after } => assert!(retry_after <= s.lease()),
        other => panic!("{other:?}"),
    }
    dedup.mark_sent(key, "other", DEDUP_TTL).await.unwrap();
    assert_eq!(
        s.deliver(&email("evt_1")).await.unwrap(),
        DeliveryOutcome::Duplicate
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_delivery_releases_its_lease_and_a_later_copy_sends() {
    let dedup = Arc::new(InMemoryDedup::new());
    let failing = Arc::new(Scripted {
        failures: 4,
        ..Scripted::default()
    });
    let s = service(failing.clone(), dedup.clone());

    let first = s.deliver(&email("evt_2")).await;
    let second = s.deliver(&email("evt_2")).await.unwrap();

    assert!(matches!(
        first,
        Err(DeliveryError::SendFailed { attempts: 4, .. })
    ));
    assert_eq!(second, DeliveryOutcome::Sent);
    assert_eq!(failing.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn a_hung_mail_server_costs_one_timeout_per_try() {
    let hung = Arc::new(Scripted {
        hang: true,
        ..Scripted::default()
    });
    let s = service(hung.clone(), Arc::default()).with_send_timeout(Duration::from_secs(2));
    let started = tokio::time::Instant::now();

    let result = s.deliver(&email("evt_3")).await;

    assert!(matches!(result, Err(DeliveryError::SendFailed { .. })));
    assert_eq!(started.elapsed(), s.longest_delivery());
    assert_eq!(hung.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_delivery_is_released_and_the_next_one_sends_at_once() {
    let dedup = Arc::new(InMemoryDedup::new());
    let hung = Arc::new(Scripted {
        hang: true,
        ..Scripted::default()
    });
    let s = service(hung, dedup.clone());
    let cut_off = tokio::time::timeout(Duration::from_secs(1), s.deliver(&email("evt_4"))).await;
    assert!(cut_off.is_err(), "the delivery was abandoned mid-send");

    assert_eq!(s.release_abandoned().await, 1);
    let next = service(Arc::default(), dedup);
    assert_eq!(
        next.deliver(&email("evt_4")).await.unwrap(),
        DeliveryOutcome::Sent
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_copy_does_not_hide_the_lease_of_the_copy_that_holds_it() {
    let hung = Arc::new(Scripted {
        hang: true,
        ..Scripted::default()
    });
    let s = Arc::new(service(hung, Arc::default()));
    let holder = {
        let s = s.clone();
        tokio::spawn(async move { s.deliver(&email("evt_5")).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;

    let copy = s.deliver(&email("evt_5")).await.unwrap();
    holder.abort();
    let _ = holder.await;

    assert!(matches!(copy, DeliveryOutcome::Busy { .. }), "{copy:?}");
    assert_eq!(s.release_abandoned().await, 1, "the holder's lease");
}
