//! The recorded completion: claimed by one publisher at a time, published
//! once, kept across a new init, and seen once by racing workers.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    domain::{
        progress::{
            ClaimedCompletion, ItemOutcome, ItemReport, ItemUpdate, Progress, ProjectId,
            ProjectStatus, ReportKey,
        },
        timestamp::Timestamp,
    },
    ports::ProgressStore,
};

use super::{LEASE, claim_due, item, mark, plus, project, set_total, stamp_at};

/// The crossing report holds the publishing claim; once it lapses the
/// relay's scan takes it, once; a released claim is due again at its
/// retry time; a published completion is never claimed again and a retry
/// of the crossing report still answers `Completed`.
pub async fn the_completion_is_claimed_by_one_holder_at_a_time_and_published_once(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "claims");
    let t0 = Utc::now();
    let lapsed = plus(t0, LEASE.as_secs() as i64 + 1);
    store.init(&id).await.expect("init");
    set_total(store, &id, 1, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let crossing = ItemReport {
        is_error: false,
        key: ReportKey::Item(item("only")),
        stamp: stamp_at(t0),
    };
    let claim = the_crossing_report_holds_the_claim(store, &id, &crossing, t0).await;
    let relayed =
        a_lapsed_claim_goes_to_the_relay_once(store, &id, &crossing, &claim, lapsed).await;
    let taken = a_released_claim_is_due_again(store, &id, &crossing, &relayed, lapsed).await;
    assert_eq!(taken.completion, claim.completion);

    // Published: never claimed again, and the record says so.
    store
        .mark_published(&taken.completion)
        .await
        .expect("mark_published");
    assert!(claim_due(store, &id, plus(lapsed, 3_600)).await.is_empty());
    let after = retry(store, &id, &crossing, plus(lapsed, 3_600)).await;
    assert_eq!(after.outcome, ItemOutcome::Completed);
    let after = after.completion.expect("record");
    assert!(after.published);
    assert_eq!(after.claimed, None);
    assert_eq!(after.event_id, crossing.stamp.event_id);
}

/// The crossing report sent again (a retry) at `at`.
async fn retry(
    store: &dyn ProgressStore,
    id: &ProjectId,
    crossing: &ItemReport,
    at: DateTime<Utc>,
) -> ItemUpdate {
    let again = ItemReport {
        stamp: stamp_at(at),
        ..crossing.clone()
    };
    store.mark_item_done(id, &again).await.expect("retry")
}

/// The crossing report holds the claim for the lease: neither a retry nor
/// the relay takes it meanwhile.
async fn the_crossing_report_holds_the_claim(
    store: &dyn ProgressStore,
    id: &ProjectId,
    crossing: &ItemReport,
    t0: DateTime<Utc>,
) -> ClaimedCompletion {
    let crossed = store.mark_item_done(id, crossing).await.expect("mark");
    let record = crossed.completion.expect("record");
    assert!(!record.published);
    let claim = record.claimed.expect("the crossing report holds the claim");
    assert_eq!(claim.completion.event_id, crossing.stamp.event_id);
    assert_eq!(claim.until, crossing.stamp.claim_until());
    let held = retry(store, id, crossing, plus(t0, 1)).await;
    assert_eq!(held.outcome, ItemOutcome::Completed);
    assert_eq!(held.completion.expect("record").claimed, None);
    assert!(
        claim_due(store, id, plus(t0, 1)).await.is_empty(),
        "the relay took a claim that had not lapsed"
    );
    claim
}

/// Lapsed (the publisher died): the relay takes it, once.
async fn a_lapsed_claim_goes_to_the_relay_once(
    store: &dyn ProgressStore,
    id: &ProjectId,
    crossing: &ItemReport,
    claim: &ClaimedCompletion,
    lapsed: DateTime<Utc>,
) -> ClaimedCompletion {
    let mut relayed = claim_due(store, id, lapsed).await;
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].completion, claim.completion);
    assert!(claim_due(store, id, lapsed).await.is_empty());
    let retried = retry(store, id, crossing, lapsed).await;
    assert_eq!(retried.completion.expect("record").claimed, None);
    relayed.remove(0)
}

/// Its publish failed: released, due again at once — for a retry too; a
/// stale release frees nobody's claim.
async fn a_released_claim_is_due_again(
    store: &dyn ProgressStore,
    id: &ProjectId,
    crossing: &ItemReport,
    relayed: &ClaimedCompletion,
    lapsed: DateTime<Utc>,
) -> ClaimedCompletion {
    store
        .release(relayed, Timestamp::new(lapsed))
        .await
        .expect("release");
    let retried = retry(store, id, crossing, plus(lapsed, 1)).await;
    let taken = retried
        .completion
        .expect("record")
        .claimed
        .expect("a retry takes a released claim");
    store
        .release(relayed, Timestamp::new(lapsed))
        .await
        .expect("a stale release");
    assert!(
        claim_due(store, id, lapsed).await.is_empty(),
        "a stale release freed someone else's claim"
    );
    taken
}

/// The completion carries the counters of the moment the line was crossed
/// (not later reports'), survives a new `init` of the project until it is
/// published, and publishing it leaves the new record alone.
pub async fn the_completion_keeps_its_counters_and_survives_a_new_init(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "kept");
    store.init(&id).await.expect("init");
    set_total(store, &id, 2, ProjectStatus::Processing)
        .await
        .expect("set_total");
    mark(store, &id, true, None).await.expect("mark");
    let crossed = mark(store, &id, false, None).await.expect("mark");
    let claim = crossed.completion.expect("record").claimed.expect("claim");
    assert_eq!(
        (
            claim.completion.total,
            claim.completion.done,
            claim.completion.errors
        ),
        (2, 2, 1)
    );
    mark(store, &id, true, None).await.expect("a late item");
    store.init(&id).await.expect("init again");

    let later = plus(Utc::now(), 2 * LEASE.as_secs() as i64);
    let relayed = claim_due(store, &id, later).await;
    assert_eq!(
        relayed.len(),
        1,
        "a new init lost the unpublished completion"
    );
    assert_eq!(
        relayed[0].completion, claim.completion,
        "the event changed after the finish line"
    );
    store
        .mark_published(&relayed[0].completion)
        .await
        .expect("mark_published");
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        Some(Progress::initial()),
        "marking an old completion published touched the new record"
    );
}

/// `workers` concurrent item reports on a project of that total: `done`
/// ends at `workers`, every tenth counted as an error, and exactly one
/// report sees `Completed`. Spawns `workers` tasks.
pub async fn concurrent_workers_see_exactly_one_completion(
    store: Arc<dyn ProgressStore>,
    prefix: &str,
    workers: u64,
) {
    let id = project(prefix, "race");
    store.init(&id).await.expect("init");
    set_total(store.as_ref(), &id, workers, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let tasks: Vec<_> = (0..workers)
        .map(|n| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let item_id = format!("item-{n}");
                mark(store.as_ref(), &id, n % 10 == 0, Some(&item_id)).await
            })
        })
        .collect();
    let mut completed = 0;
    for task in tasks {
        let update = task.await.expect("task").expect("mark");
        if update.outcome == ItemOutcome::Completed {
            completed += 1;
        }
    }
    assert_eq!(completed, 1, "exactly one caller must see COMPLETED");
    let progress = store.get_progress(&id).await.expect("get").expect("exists");
    assert_eq!(progress.done, workers);
    assert_eq!(progress.errors, workers.div_ceil(10));
    assert_eq!(progress.status, ProjectStatus::Done);
}
