//! The counters and the finish line: what is counted, once, and when a
//! project is done.

use crate::{
    domain::progress::{ItemOutcome, Progress, ProjectStatus},
    ports::{ProgressError, ProgressStore},
};

use super::{mark, project, report, set_total};

/// `init` returns and stores `INITIALIZING` with every counter 0.
pub async fn init_writes_zero_counters(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "init");
    assert_eq!(store.init(&id).await.expect("init"), Progress::initial());
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        Some(Progress::initial())
    );
}

/// An unknown project reads as `None`; `set_total` and `mark_item_done` on
/// it are `NotFound`, and none of them creates it.
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

/// Reports count `done` and `errors`; the one that reaches the total
/// answers `Completed` with the completion and the project is `DONE`; a
/// later report counts but is not a second `Completed`.
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

/// While `CRAWLING` the project never completes, even past its total.
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

/// A `set_total` to `PROCESSING_WAIT` after the last item completes the
/// project (and says so); no later report completes it again.
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

/// A redelivered item id counts once and reports `duplicate`; a
/// redelivered crossing item still answers `Completed`.
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

/// Once `DONE`, a `set_total` that did not complete the project is
/// `AlreadyDone` and changes nothing.
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

/// A new `init` resets the counters and forgets the item ids and call
/// tokens seen before.
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
