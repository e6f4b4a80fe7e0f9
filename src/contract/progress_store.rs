//! The `ProgressStore` contract (DESIGN §5), runnable against any adapter.

use std::sync::Arc;

use crate::{
    domain::progress::{ItemId, ItemOutcome, Progress, ProjectId, ProjectStatus},
    ports::{ProgressError, ProgressStore},
};

fn project(prefix: &str, name: &str) -> ProjectId {
    ProjectId::parse(&format!("{prefix}-{name}")).expect("contract project ids are valid")
}

fn item(id: &str) -> ItemId {
    ItemId::parse(id).expect("contract item ids are valid")
}

/// Runs every check of the contract; `prefix` keeps its project ids apart
/// from other tests using the same store.
pub async fn run_all(store: Arc<dyn ProgressStore>, prefix: &str) {
    init_writes_zero_counters(store.as_ref(), prefix).await;
    missing_projects_are_reported_and_never_created(store.as_ref(), prefix).await;
    items_and_errors_are_counted(store.as_ref(), prefix).await;
    the_crawling_guard_holds_back_the_finish_line(store.as_ref(), prefix).await;
    a_late_processing_wait_completes_the_project_once(store.as_ref(), prefix).await;
    redelivered_items_are_counted_once(store.as_ref(), prefix).await;
    a_done_project_cannot_be_reopened(store.as_ref(), prefix).await;
    init_resets_an_existing_project(store.as_ref(), prefix).await;
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
        store.set_total(&id, 3, ProjectStatus::Crawling).await,
        Err(ProgressError::NotFound(_))
    ));
    assert!(matches!(
        store.mark_item_done(&id, false, None).await,
        Err(ProgressError::NotFound(_))
    ));
    assert!(matches!(
        store.mark_item_done(&id, false, Some(&item("x"))).await,
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
    let update = store
        .set_total(&id, 3, ProjectStatus::Processing)
        .await
        .expect("set_total");
    assert!(!update.completed);
    let a = store.mark_item_done(&id, false, None).await.expect("mark");
    let b = store.mark_item_done(&id, true, None).await.expect("mark");
    assert_eq!(a.outcome, ItemOutcome::Processing);
    assert_eq!((b.progress.done, b.progress.errors), (2, 1));
    let c = store.mark_item_done(&id, false, None).await.expect("mark");
    assert_eq!(c.outcome, ItemOutcome::Completed);
    assert_eq!(c.progress.status, ProjectStatus::Done);
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        Some(Progress {
            status: ProjectStatus::Done,
            total: 3,
            done: 3,
            errors: 1
        })
    );
    let late = store
        .mark_item_done(&id, false, None)
        .await
        .expect("late mark");
    assert_eq!(late.outcome, ItemOutcome::Processing, "a second COMPLETED");
    assert_eq!(late.progress.done, 4);
}

pub async fn the_crawling_guard_holds_back_the_finish_line(
    store: &dyn ProgressStore,
    prefix: &str,
) {
    let id = project(prefix, "crawling");
    store.init(&id).await.expect("init");
    store
        .set_total(&id, 2, ProjectStatus::Crawling)
        .await
        .expect("set_total");
    for _ in 0..3 {
        let update = store.mark_item_done(&id, false, None).await.expect("mark");
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
    store
        .set_total(&id, 2, ProjectStatus::Crawling)
        .await
        .expect("set_total");
    store.mark_item_done(&id, false, None).await.expect("mark");
    store.mark_item_done(&id, false, None).await.expect("mark");
    let update = store
        .set_total(&id, 2, ProjectStatus::ProcessingWait)
        .await
        .expect("set_total");
    assert!(
        update.completed,
        "ending discovery after the last item must complete"
    );
    assert_eq!(update.progress.status, ProjectStatus::Done);
    let again = store.mark_item_done(&id, false, None).await.expect("mark");
    assert_eq!(again.outcome, ItemOutcome::Processing);
}

pub async fn redelivered_items_are_counted_once(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "dedupe");
    store.init(&id).await.expect("init");
    store
        .set_total(&id, 2, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let first = store
        .mark_item_done(&id, true, Some(&item("post-1")))
        .await
        .expect("mark");
    assert!(!first.duplicate);
    for _ in 0..3 {
        let again = store
            .mark_item_done(&id, true, Some(&item("post-1")))
            .await
            .expect("mark");
        assert!(again.duplicate);
        assert_eq!((again.progress.done, again.progress.errors), (1, 1));
        assert_eq!(again.outcome, ItemOutcome::Processing);
    }
    let last = store
        .mark_item_done(&id, false, Some(&item("post-2")))
        .await
        .expect("mark");
    assert_eq!(last.outcome, ItemOutcome::Completed);
    let replay = store
        .mark_item_done(&id, false, Some(&item("post-2")))
        .await
        .expect("mark");
    assert_eq!(
        replay.outcome,
        ItemOutcome::Processing,
        "a replayed last item completed twice"
    );
    assert!(replay.duplicate);
}

pub async fn a_done_project_cannot_be_reopened(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "reopen");
    store.init(&id).await.expect("init");
    store
        .set_total(&id, 1, ProjectStatus::Processing)
        .await
        .expect("set_total");
    store.mark_item_done(&id, false, None).await.expect("mark");
    assert!(matches!(
        store.set_total(&id, 5, ProjectStatus::Crawling).await,
        Err(ProgressError::AlreadyDone(_))
    ));
    let progress = store.get_progress(&id).await.expect("get").expect("exists");
    assert_eq!((progress.status, progress.total), (ProjectStatus::Done, 1));
}

pub async fn init_resets_an_existing_project(store: &dyn ProgressStore, prefix: &str) {
    let id = project(prefix, "reset");
    store.init(&id).await.expect("init");
    store
        .set_total(&id, 5, ProjectStatus::Processing)
        .await
        .expect("set_total");
    store
        .mark_item_done(&id, false, Some(&item("a")))
        .await
        .expect("mark");
    store.init(&id).await.expect("init again");
    assert_eq!(
        store.get_progress(&id).await.expect("get"),
        Some(Progress::initial())
    );
    store
        .set_total(&id, 5, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let update = store
        .mark_item_done(&id, false, Some(&item("a")))
        .await
        .expect("mark");
    assert!(!update.duplicate, "init must forget earlier item ids");
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
    store
        .set_total(&id, workers, ProjectStatus::Processing)
        .await
        .expect("set_total");
    let tasks: Vec<_> = (0..workers)
        .map(|n| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let item = item(&format!("item-{n}"));
                store.mark_item_done(&id, n % 10 == 0, Some(&item)).await
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
