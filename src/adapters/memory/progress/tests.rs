//! Unit tests of `InMemoryProgressStore`: the shared port suite, and the
//! time to live that only a manual clock can show.

use chrono::TimeZone;

use super::*;
use crate::{adapters::memory::ManualClock, ports::suites};

fn report() -> ItemReport {
    ItemReport {
        is_error: false,
        key: ReportKey::Call(Uuid::new_v4()),
        stamp: CompletionStamp {
            event_id: EventId::from_uuid(Uuid::new_v4()),
            at: Timestamp::new(Utc::now()),
            lease: StdDuration::from_secs(30),
        },
    }
}

fn store() -> (Arc<ManualClock>, Arc<InMemoryProgressStore>) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
    ));
    (clock.clone(), Arc::new(InMemoryProgressStore::new(clock)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_in_memory_store_keeps_the_progress_store_contract() {
    let (_, store) = store();
    suites::progress_store::run_all(store, "mem").await;
}

#[tokio::test]
async fn every_write_refreshes_the_seven_day_ttl_and_expired_projects_vanish() {
    let (clock, store) = store();
    let id = ProjectId::parse("ttl").unwrap();
    store.init(&id).await.unwrap();
    assert_eq!(store.ttl_seconds(&id), Some(PROGRESS_TTL_SECONDS));

    clock.advance(Duration::days(3));
    assert_eq!(
        store.ttl_seconds(&id),
        Some(PROGRESS_TTL_SECONDS - 3 * 86_400)
    );
    store.mark_item_done(&id, &report()).await.unwrap();
    assert_eq!(store.ttl_seconds(&id), Some(PROGRESS_TTL_SECONDS));

    clock.advance(Duration::days(6));
    store
        .set_total(&id, 9, ProjectStatus::Processing, &report().stamp)
        .await
        .unwrap();
    assert_eq!(store.ttl_seconds(&id), Some(PROGRESS_TTL_SECONDS));

    clock.advance(Duration::seconds(PROGRESS_TTL_SECONDS));
    assert_eq!(store.get_progress(&id).await.unwrap(), None);
    assert!(matches!(
        store.mark_item_done(&id, &report()).await,
        Err(ProgressError::NotFound(_))
    ));
}
