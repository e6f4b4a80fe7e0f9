//! The retry-safe finish line: a replayed call counts once and answers the
//! same; a retried crossing report answers `Completed` with the same event id.

use chrono::Utc;

use crate::{
    domain::progress::{ItemOutcome, ItemReport, ProjectStatus, ReportKey},
    ports::{ProgressError, ProgressStore},
};

use super::{item, mark, plus, project, report, set_total, stamp, stamp_at};

/// The store's own retry of a call (or a client's replay after a
/// reconnect) runs the same report again: counted once, same answer — the
/// publishing claim included.
pub async fn a_replayed_call_counts_once_and_answers_the_same(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "replay");
    store.init(&id).await.expect("init");
    set_total(store, &id, 2, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let first = report(true, None);
    let once = store.mark_item_done(&id, &first).await.expect("mark");
    let twice = store.mark_item_done(&id, &first).await.expect("replay");
    assert_eq!(once, twice, "a replayed call answers as the call did");
    assert_eq!((twice.progress.done, twice.progress.errors), (1, 1));
    assert!(!twice.duplicate, "a replayed call is the same report");

    let last = report(false, None);
    let crossed = store.mark_item_done(&id, &last).await.expect("mark");
    let replayed = store.mark_item_done(&id, &last).await.expect("replay");
    assert_eq!(crossed.outcome, ItemOutcome::Completed);
    assert_eq!(replayed.outcome, ItemOutcome::Completed);
    assert_eq!(replayed.progress.done, 2, "the replay counted again");
    let (crossed, replayed) = (
        crossed.completion.expect("record"),
        replayed.completion.expect("record"),
    );
    assert_eq!(crossed.event_id, last.stamp.event_id);
    assert_eq!(replayed.event_id, crossed.event_id);
    assert_eq!(replayed.completed_at, crossed.completed_at);
    assert_eq!(
        replayed.claimed, crossed.claimed,
        "the replay of the crossing call lost the claim it took: nobody would publish until it lapsed"
    );
    assert!(replayed.claimed.is_some());
}

/// A worker retrying its last item after a lost answer (or a 503) gets
/// what the first try got: COMPLETED, the same event id.
pub async fn a_retried_crossing_item_answers_completed_with_the_same_event_id(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "retry-item");
    store.init(&id).await.expect("init");
    set_total(store, &id, 2, ProjectStatus::Processing)
        .await
        .expect("set_total");
    mark(store, &id, false, Some("a")).await.expect("mark");
    let first = mark(store, &id, true, Some("b")).await.expect("mark");
    let record = first.completion.expect("record");
    // A new HTTP call: a new stamp (another event id, a later time).
    let retry = store
        .mark_item_done(
            &id,
            &ItemReport {
                is_error: true,
                key: ReportKey::Item(item("b")),
                stamp: stamp_at(plus(Utc::now(), 1)),
            },
        )
        .await
        .expect("retry");
    assert_eq!(retry.outcome, ItemOutcome::Completed);
    assert!(retry.duplicate);
    assert_eq!(
        (retry.progress.done, retry.progress.errors),
        (2, 1),
        "the retry counted again"
    );
    let again = retry.completion.expect("record");
    assert_eq!(again.event_id, record.event_id, "a second event id");
    assert_eq!(again.completed_at, record.completed_at);
}

/// A `set_total` that completed the project, replayed (same stamp) or
/// retried (a new stamp, same total and status), answers as it did, with
/// the same event id; any other total is `AlreadyDone`.
pub async fn a_retried_total_that_completed_answers_the_same(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "retry-total");
    store.init(&id).await.expect("init");
    set_total(store, &id, 1, ProjectStatus::Crawling)
        .await
        .expect("set_total");
    mark(store, &id, false, None).await.expect("mark");
    let crossing = stamp();
    let first = store
        .set_total(&id, 1, ProjectStatus::ProcessingWait, &crossing)
        .await
        .expect("set_total");
    let replay = store
        .set_total(&id, 1, ProjectStatus::ProcessingWait, &crossing)
        .await
        .expect("a replay of the completing call");
    assert_eq!(replay, first, "a replayed call answers as the call did");
    assert!(
        replay
            .completion
            .as_ref()
            .expect("record")
            .claimed
            .is_some()
    );
    let retry = set_total(store, &id, 1, ProjectStatus::ProcessingWait)
        .await
        .expect("a retry of the completing request is no conflict");
    assert!(first.completed && retry.completed);
    assert_eq!(retry.progress, first.progress);
    assert_eq!(
        retry.completion.expect("record").event_id,
        first.completion.expect("record").event_id
    );
    assert!(matches!(
        set_total(store, &id, 1, ProjectStatus::Processing).await,
        Err(ProgressError::AlreadyDone(_))
    ));
}
