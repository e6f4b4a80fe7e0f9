//! What the hand-off loop's takes share with it (decision 74): the rows
//! published and not yet marked, and their batched marks (decision 72).

use std::{
    collections::HashSet,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::{
    sync::{Notify, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::ports::{OutboxEntry, OutboxLink};

use super::{OutboxRelay, chain};

/// What the takes in flight share with the loop: the rows awaiting their
/// mark (each take adds its rows as they are confirmed; the lock is never
/// held across an await), a signal when a mark becomes due, and a single
/// permit to record failed publishes (during an outage the takes in flight
/// fail together: one pool connection for their records, not one each).
pub(super) struct Pending {
    pub(super) unmarked: Mutex<Unmarked>,
    pub(super) due_set: Notify,
    pub(super) recording: Semaphore,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            unmarked: Mutex::default(),
            due_set: Notify::new(),
            recording: Semaphore::new(1),
        }
    }
}

impl Pending {
    /// A confirmed row, to be marked `mark_every` later but `margin`
    /// before its claim ends at the latest; the loop is told when this
    /// brings the next mark forward.
    pub(super) fn add(
        &self,
        row: &OutboxEntry,
        claim_ends: DateTime<Utc>,
        mark_every: Duration,
        margin: chrono::Duration,
    ) {
        let latest = Instant::now()
            + (claim_ends - Utc::now() - margin)
                .to_std()
                .unwrap_or_default();
        let sooner = lock(self).add(row, claim_ends, mark_every, latest);
        if sooner {
            self.due_set.notify_one();
        }
    }
}

pub(super) fn lock(pending: &Pending) -> MutexGuard<'_, Unmarked> {
    pending
        .unmarked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work`, noting when `stop` comes meanwhile: the drain at the stop
/// counts its third of the lease from then.
pub(super) async fn noting_stop<T>(
    stop: &CancellationToken,
    stopped_at: &mut Option<Instant>,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    tokio::select! {
        out = &mut work => out,
        () = stop.cancelled() => {
            stopped_at.get_or_insert_with(Instant::now);
            work.await
        }
    }
}

/// How soon a mark that failed is tried again (while the rows' claims
/// last): a database refusing connections is not asked 20 times a second.
const MARK_RETRY: Duration = Duration::from_millis(500);

/// Rows the hand-off published and has not marked yet: their ids with the
/// end of their claim, their aggregates, and when they must be marked;
/// `retrying` after a failed mark (the next waits for `due`).
#[derive(Default)]
pub(super) struct Unmarked {
    pub(super) rows: Vec<(i64, DateTime<Utc>)>,
    pub(super) aggregates: HashSet<String>,
    pub(super) due: Option<Instant>,
    pub(super) retrying: bool,
}

impl Unmarked {
    /// Adds a row; true when its mark is due sooner than the one set. A
    /// mark set (or retried) already keeps its time unless the row's claim
    /// ends first: retries keep their pace.
    fn add(
        &mut self,
        row: &OutboxEntry,
        claim_ends: DateTime<Utc>,
        mark_every: Duration,
        latest: Instant,
    ) -> bool {
        self.rows.push((row.id, claim_ends));
        self.aggregates.insert(row.aggregate.clone());
        let due = match self.due {
            None => (Instant::now() + mark_every).min(latest),
            Some(due) => due.min(latest),
        };
        let sooner = self.due.is_none_or(|set| due < set);
        self.due = Some(due);
        sooner
    }

    /// How long until `margin` before the first of their claims ends.
    pub(super) fn time_left(&self, margin: chrono::Duration) -> Option<Duration> {
        let ends = self.rows.iter().map(|(_, ends)| *ends).min()?;
        Some((ends - Utc::now() - margin).to_std().unwrap_or_default())
    }
}

impl OutboxRelay {
    /// Whether the unmarked rows' marks are owed (they failed until less
    /// than a thirtieth of the lease is left before a take's margin).
    pub(super) fn marks_owed(&self, unmarked: &Unmarked) -> bool {
        unmarked
            .time_left(self.lease() / 5)
            .is_some_and(|left| left < self.config.lease / 30)
    }

    pub(super) async fn mark(&self, link: &OutboxLink, pending: &Pending) {
        self.mark_within(link, pending, self.config.lease / 3).await;
    }

    /// Marks the `unmarked` rows published, within `bound` and the first
    /// of their claims (at least `MARK_RETRY`: a late mark still spares a
    /// third copy); then, if a write waits behind a row of their
    /// aggregates, wakes the claim loops (its row is claimable now). A mark
    /// that failed keeps the rows whose claim lasts more than a tenth of the
    /// lease for another try `MARK_RETRY` later, and every write blocked
    /// behind a row of the batch for its ring (a dropped row's write is
    /// rung early then: harmless, the claim loops' poll takes it once that
    /// row went out); the others go out again when their claim ends, with
    /// the same event ids.
    pub(super) async fn mark_within(&self, link: &OutboxLink, pending: &Pending, bound: Duration) {
        let batch = std::mem::take(&mut *lock(pending));
        if batch.rows.is_empty() {
            return;
        }
        let claims_left = batch.time_left(chrono::Duration::zero()).unwrap_or(bound);
        let bound = bound.min(claims_left.max(MARK_RETRY));
        let ids: Vec<i64> = batch.rows.iter().map(|(id, _)| *id).collect();
        let marked = tokio::time::timeout(bound, self.store.outbox_published(&ids, Utc::now()));
        let failure = match marked.await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "store").increment(1);
                Some(chain(error))
            }
            Err(_) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "stalled").increment(1);
                Some("not answered in time".to_owned())
            }
        };
        let Some(error) = failure else {
            if link.unblock(&batch.aggregates) {
                link.wakeup().notify_one();
            }
            return;
        };
        let margin = self.lease() / 10;
        let kept: Vec<_> = batch
            .rows
            .into_iter()
            .filter(|(_, ends)| *ends - Utc::now() > margin)
            .collect();
        tracing::warn!(
            rows = ids.len(),
            kept = kept.len(),
            error,
            "outbox hand-off not recorded; tried again while the claim lasts, else the rows go out again when it runs out"
        );
        if kept.is_empty() {
            // Nothing left to mark here: the claim loops take the rows when
            // their claims end, and the writes behind them after.
            if link.unblock(&batch.aggregates) {
                link.wakeup().notify_one();
            }
            return;
        }
        // Merged: the loop polls the takes in flight only between marks,
        // so nothing was added meanwhile, but nothing would be lost.
        let mut unmarked = lock(pending);
        unmarked.rows.extend(kept);
        unmarked.aggregates.extend(batch.aggregates);
        unmarked.due = Some(Instant::now() + MARK_RETRY);
        unmarked.retrying = true;
    }
}
