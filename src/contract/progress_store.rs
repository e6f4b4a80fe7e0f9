//! The `ProgressStore` contract (DESIGN §5 and §10), runnable against any
//! adapter: the counters and the finish line, and the retry-safe finish
//! line — a replayed call counts once, a retried crossing report answers
//! `Completed` with the same event id, and the completion is recorded,
//! claimed by one publisher at a time and published once.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        events::EventId,
        progress::{
            ClaimedCompletion, CompletionStamp, ItemId, ItemOutcome, ItemReport, ItemUpdate,
            Progress, ProjectId, ProjectStatus, ReportKey, TotalUpdate,
        },
        timestamp::Timestamp,
    },
    ports::{ProgressError, ProgressStore},
};

/// The claim lease the suite's stamps carry.
const LEASE: Duration = Duration::from_secs(60);

fn project(prefix: &str, name: &str) -> ProjectId {
    ProjectId::parse(&format!("{prefix}-{name}")).expect("contract project ids are valid")
}

fn item(id: &str) -> ItemId {
    ItemId::parse(id).expect("contract item ids are valid")
}

/// `at` plus `seconds` (may be negative).
fn plus(at: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    at + chrono::Duration::seconds(seconds)
}

/// A caller's stamp: a fresh event id, the given time.
fn stamp_at(at: DateTime<Utc>) -> CompletionStamp {
    CompletionStamp {
        event_id: EventId::from_uuid(Uuid::new_v4()),
        at: Timestamp::new(at),
        lease: LEASE,
    }
}

fn stamp() -> CompletionStamp {
    stamp_at(Utc::now())
}

/// A new report: of `item_id`, or a call of its own without one.
fn report(is_error: bool, item_id: Option<&str>) -> ItemReport {
    ItemReport {
        is_error,
        key: match item_id {
            Some(id) => ReportKey::Item(item(id)),
            None => ReportKey::Call(Uuid::new_v4()),
        },
        stamp: stamp(),
    }
}

async fn mark(
    store: &dyn ProgressStore,
    id: &ProjectId,
    is_error: bool,
    item_id: Option<&str>,
) -> Result<ItemUpdate, ProgressError> {
    store.mark_item_done(id, &report(is_error, item_id)).await
}

async fn set_total(
    store: &dyn ProgressStore,
    id: &ProjectId,
    total: u64,
    status: ProjectStatus,
) -> Result<TotalUpdate, ProgressError> {
    store.set_total(id, total, status, &stamp()).await
}

/// The claimed completions of `id` among those due at `at`.
async fn claim_due(
    store: &dyn ProgressStore,
    id: &ProjectId,
    at: DateTime<Utc>,
) -> Vec<ClaimedCompletion> {
    store
        .claim_due_completions(Timestamp::new(at), LEASE, 10_000)
        .await
        .expect("claim_due_completions")
        .claimed
        .into_iter()
        .filter(|c| c.completion.project == *id)
        .collect()
}

/// Runs every check of the contract; `prefix` keeps its project ids apart
/// from other tests using the same store. The completion checks claim
/// whatever is due in the store: give them a store (or completion keys) of
/// their own.
pub async fn run_all(store: Arc<dyn ProgressStore>, prefix: &str) {
    init_writes_zero_counters(store.as_ref(), prefix).await;
    missing_projects_are_reported_and_never_created(store.as_ref(), prefix).await;
    items_and_errors_are_counted(store.as_ref(), prefix).await;
    the_crawling_guard_holds_back_the_finish_line(store.as_ref(), prefix).await;
    a_late_processing_wait_completes_the_project_once(store.as_ref(), prefix).await;
    redelivered_items_are_counted_once(store.as_ref(), prefix).await;
    a_done_project_cannot_be_reopened(store.as_ref(), prefix).await;
    init_resets_an_existing_project(store.as_ref(), prefix).await;
    a_replayed_call_counts_once_and_answers_the_same(store.as_ref(), prefix).await;
    a_retried_crossing_item_answers_completed_with_the_same_event_id(store.as_ref(), prefix).await;
    a_retried_total_that_completed_answers_the_same(store.as_ref(), prefix).await;
    the_completion_is_claimed_by_one_holder_at_a_time_and_published_once(store.as_ref(), prefix)
        .await;
    the_completion_keeps_its_counters_and_survives_a_new_init(store.as_ref(), prefix).await;
    concurrent_workers_see_exactly_one_completion(store.clone(), prefix, 1000).await;
}

pub async fn init_writes_zero_counters(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "init");
    assert_eq!(store.init(&id).await.expect("init"), Progress::initial());
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        Some(Progress::initial())
    );
}

pub async fn missing_projects_are_reported_and_never_created(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "missing");
    assert_eq!(store.get_progress(&id).await.expect("get"), None);
    assert!(matches!(
        set_total(store, &id, 3, ProjectStatus::Crawling).await,
        Err(ProgressError::NotFound(_))
    ));
    assert!(matches!(
        mark(store, &id, false, None).await,
        Err(ProgressError::NotFound(_))
    ));
    assert!(matches!(
        mark(store, &id, false, Some("x")).await,
        Err(ProgressError::NotFound(_))
    ));
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        None,
        "a read or failed write created the project"
    );
}

pub async fn items_and_errors_are_counted(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "count");
    store.init(&id).await.expect("init");
    let update = set_total(store, &id, 3, ProjectStatus::Processing)
        .await
        .expect("set_total");
    assert!(!update.completed);
    assert_eq!(update.completion, None);
    let a = mark(store, &id, false, None).await.expect("mark");
    let b = mark(store, &id, true, None).await.expect("mark");
    assert_eq!(a.outcome, ItemOutcome::Processing);
    assert_eq!(a.completion, None);
    assert_eq!((b.progress.done, b.progress.errors), (2, 1));
    let c = mark(store, &id, false, None).await.expect("mark");
    assert_eq!(c.outcome, ItemOutcome::Completed);
    assert_eq!(c.progress.status, ProjectStatus::Done);
    assert!(c.completion.is_some(), "COMPLETED without its record");
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        Some(Progress {
            status: ProjectStatus::Done,
            total: 3,
            done: 3,
            errors: 1
        })
    );
    let late = mark(store, &id, false, None).await.expect("late mark");
    assert_eq!(late.outcome, ItemOutcome::Processing, "a second COMPLETED");
    assert_eq!(late.completion, None);
    assert_eq!(late.progress.done, 4);
}

pub async fn the_crawling_guard_holds_back_the_finish_line(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "crawling");
    store.init(&id).await.expect("init");
    set_total(store, &id, 2, ProjectStatus::Crawling)
        .await
        .expect("set_total");
    for _ in 0..3 {
        let update = mark(store, &id, false, None).await.expect("mark");
        assert_eq!(
            update.outcome,
            ItemOutcome::Processing,
            "completed while CRAWLING"
        );
    }
    let progress = store.get_progress(&id).await.expect("get").expect("exists");
    assert_eq!(progress.status, ProjectStatus::Crawling);
}

pub async fn a_late_processing_wait_completes_the_project_once(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "late-wait");
    store.init(&id).await.expect("init");
    set_total(store, &id, 2, ProjectStatus::Crawling)
        .await
        .expect("set_total");
    mark(store, &id, false, None).await.expect("mark");
    mark(store, &id, false, None).await.expect("mark");
    let update = set_total(store, &id, 2, ProjectStatus::ProcessingWait)
        .await
        .expect("set_total");
    assert!(
        update.completed,
        "ending discovery after the last item must complete"
    );
    assert_eq!(update.progress.status, ProjectStatus::Done);
    assert!(update.completion.is_some());
    let again = mark(store, &id, false, None).await.expect("mark");
    assert_eq!(again.outcome, ItemOutcome::Processing);
}

pub async fn redelivered_items_are_counted_once(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "dedupe");
    store.init(&id).await.expect("init");
    set_total(store, &id, 2, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let first = mark(store, &id, true, Some("post-1")).await.expect("mark");
    assert!(!first.duplicate);
    for _ in 0..3 {
        let again = mark(store, &id, true, Some("post-1")).await.expect("mark");
        assert!(again.duplicate);
        assert_eq!((again.progress.done, again.progress.errors), (1, 1));
        assert_eq!(again.outcome, ItemOutcome::Processing);
    }
    let last = mark(store, &id, false, Some("post-2")).await.expect("mark");
    assert_eq!(last.outcome, ItemOutcome::Completed);
    let replay = mark(store, &id, false, Some("post-2")).await.expect("mark");
    assert_eq!(
        replay.outcome,
        ItemOutcome::Completed,
        "a redelivered last item is the report that completed the project"
    );
    assert!(replay.duplicate);
    assert_eq!(replay.progress.done, 2, "counted twice");
    let other = mark(store, &id, false, Some("post-1")).await.expect("mark");
    assert_eq!(other.outcome, ItemOutcome::Processing);
}

pub async fn a_done_project_cannot_be_reopened(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "reopen");
    store.init(&id).await.expect("init");
    set_total(store, &id, 1, ProjectStatus::Processing)
        .await
        .expect("set_total");
    mark(store, &id, false, None).await.expect("mark");
    assert!(matches!(
        set_total(store, &id, 5, ProjectStatus::Crawling).await,
        Err(ProgressError::AlreadyDone(_))
    ));
    assert!(
        matches!(
            set_total(store, &id, 1, ProjectStatus::Processing).await,
            Err(ProgressError::AlreadyDone(_))
        ),
        "a total that did not complete the project is no retry of the one that did"
    );
    let progress = store.get_progress(&id).await.expect("get").expect("exists");
    assert_eq!((progress.status, progress.total), (ProjectStatus::Done, 1));
}

pub async fn init_resets_an_existing_project(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "reset");
    store.init(&id).await.expect("init");
    set_total(store, &id, 5, ProjectStatus::Processing)
        .await
        .expect("set_total");
    mark(store, &id, false, Some("a")).await.expect("mark");
    let call = report(false, None);
    store.mark_item_done(&id, &call).await.expect("mark");
    store.init(&id).await.expect("init again");
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        Some(Progress::initial())
    );
    set_total(store, &id, 5, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let update = mark(store, &id, false, Some("a")).await.expect("mark");
    assert!(!update.duplicate, "init must forget earlier item ids");
    let update = store.mark_item_done(&id, &call).await.expect("mark");
    assert_eq!(update.progress.done, 2, "init must forget earlier calls");
}

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
    let retry_at = |at| ItemReport {
        stamp: stamp_at(at),
        ..crossing.clone()
    };

    // The crossing report holds the claim for the lease.
    let crossed = store.mark_item_done(&id, &crossing).await.expect("mark");
    let record = crossed.completion.expect("record");
    assert!(!record.published);
    let claim = record.claimed.expect("the crossing report holds the claim");
    assert_eq!(claim.completion.event_id, crossing.stamp.event_id);
    assert_eq!(claim.until, crossing.stamp.claim_until());
    let held = store
        .mark_item_done(&id, &retry_at(plus(t0, 1)))
        .await
        .expect("retry");
    assert_eq!(held.outcome, ItemOutcome::Completed);
    assert_eq!(held.completion.expect("record").claimed, None);
    assert!(
        claim_due(store, &id, plus(t0, 1)).await.is_empty(),
        "the relay took a claim that had not lapsed"
    );

    // Lapsed (the publisher died): the relay takes it, once.
    let relayed = claim_due(store, &id, lapsed).await;
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].completion, claim.completion);
    assert!(claim_due(store, &id, lapsed).await.is_empty());
    let retried = store
        .mark_item_done(&id, &retry_at(lapsed))
        .await
        .expect("retry");
    assert_eq!(retried.completion.expect("record").claimed, None);

    // Its publish failed: released, due again at once — for a retry too.
    store
        .release(&relayed[0], Timestamp::new(lapsed))
        .await
        .expect("release");
    let retried = store
        .mark_item_done(&id, &retry_at(plus(lapsed, 1)))
        .await
        .expect("retry");
    let taken = retried
        .completion
        .expect("record")
        .claimed
        .expect("a retry takes a released claim");
    assert_eq!(taken.completion, claim.completion);
    store
        .release(&relayed[0], Timestamp::new(lapsed))
        .await
        .expect("a stale release");
    assert!(
        claim_due(store, &id, lapsed).await.is_empty(),
        "a stale release freed someone else's claim"
    );

    // Published: never claimed again, and the record says so.
    store
        .mark_published(&taken.completion)
        .await
        .expect("mark_published");
    assert!(claim_due(store, &id, plus(lapsed, 3_600)).await.is_empty());
    let after = store
        .mark_item_done(&id, &retry_at(plus(lapsed, 3_600)))
        .await
        .expect("retry");
    assert_eq!(after.outcome, ItemOutcome::Completed);
    let after = after.completion.expect("record");
    assert!(after.published);
    assert_eq!(after.claimed, None);
    assert_eq!(after.event_id, crossing.stamp.event_id);
}

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

/// `workers` concurrent `mark_item_done` calls on a project of that total:
/// `done` ends at `workers` and exactly one call sees `Completed`.
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
