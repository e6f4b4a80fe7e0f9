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
            ClaimedCompletion, CompletionStamp, ItemId, ItemReport, ItemUpdate, ProjectId,
            ProjectStatus, ReportKey, TotalUpdate,
        },
        timestamp::Timestamp,
    },
    ports::{ProgressError, ProgressStore},
};

mod completion;
mod counting;
mod retries;

pub use completion::*;
pub use counting::*;
pub use retries::*;

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

/// Runs every check of the contract, in order, and panics at the first
/// broken promise. `prefix` keeps its project ids (`<prefix>-*`) apart
/// from other tests using the same store; they must not exist yet. The
/// completion checks claim whatever completion is due in the store: give
/// them a store (or completion keys) of their own. Needs a Tokio runtime;
/// the concurrent check means something only on a multi-threaded one.
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
