//! The relay's hand-off loop (decision 70): the rows this process's writes
//! claimed for it as they committed, published at once, without a claim
//! statement, in order per aggregate; the claim loops remain the safety net
//! for whatever it cannot publish. Published rows are marked in batches
//! (decision 72), at most `mark_every` after the take that published them
//! (each publish waits for its confirm 5 s at most) and before their claim
//! ends unless the database stalls.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::ports::{OutboxEntry, OutboxLink};

use super::{OutboxRelay, chain};

/// Closes the link when the hand-off loop ends, also by a panic: writes
/// must not claim rows for a relay that no longer takes them.
struct CloseOnDrop(Arc<OutboxLink>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// How soon a mark that failed is tried again (while the rows' claims
/// last): a database refusing connections is not asked 20 times a second.
const MARK_RETRY: Duration = Duration::from_millis(500);

/// Rows the hand-off published and has not marked yet: their ids with the
/// end of their claim, their aggregates, and when they must be marked;
/// `retrying` after a failed mark (the next waits for `due`).
#[derive(Default)]
struct Unmarked {
    rows: Vec<(i64, DateTime<Utc>)>,
    aggregates: HashSet<String>,
    due: Option<Instant>,
    retrying: bool,
}

impl Unmarked {
    fn add(&mut self, row: &OutboxEntry, claim_ends: DateTime<Utc>, mark_every: Duration) {
        self.due.get_or_insert_with(|| Instant::now() + mark_every);
        self.rows.push((row.id, claim_ends));
        self.aggregates.insert(row.aggregate.clone());
    }

    /// How long until `margin` before the first of their claims ends.
    fn time_left(&self, margin: chrono::Duration) -> Option<Duration> {
        let ends = self.rows.iter().map(|(_, ends)| *ends).min()?;
        Some((ends - Utc::now() - margin).to_std().unwrap_or_default())
    }
}

impl OutboxRelay {
    /// Publishes the rows this process's writes hand over as they commit
    /// (decision 70), one take (at most a batch) after another: what
    /// commits while a take is published goes out with the next. The
    /// published rows are marked together `mark_every` after the first of
    /// them, at once when a batch waits or a write waits behind one of
    /// them (unless a mark failed: the next waits for its retry time); a
    /// take ends a fifth of the lease before the first claim of the rows
    /// it or an earlier take published ends, so their mark lands first
    /// (another relay may claim them after), and none starts while those
    /// marks are owed. After a take with a
    /// failure (the broker down) the link closes for a growing pause, so
    /// writes leave their rows to the claim, which backs off too. At
    /// `stop` a take or mark under way gets a third of the lease, then the
    /// link closes and what is left is marked, published and marked within
    /// another third (the task ends within 20 s, inside the 45 s grace).
    pub(super) fn spawn_handoff(self: Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let link = self.store.outbox_link();
        link.open(self.lease());
        tokio::spawn(async move {
            let _close = CloseOnDrop(link.clone());
            let mut unmarked = Unmarked::default();
            let mut failures: u32 = 0;
            loop {
                let due = unmarked.due;
                // While marks are owed (they failed), a take waits for them:
                // it would be cut off at once. The ring keeps.
                let owed = self.marks_owed(&unmarked);
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                        self.mark(&link, &mut unmarked).await;
                        continue;
                    }
                    () = link.ready(), if !owed => {}
                }
                let take = self.deliver_take(&link, self.config.lease, &mut unmarked);
                let Some(delivered) = self.soon_after(&stop, take).await else {
                    break;
                };
                let full = unmarked.rows.len() >= self.config.batch as usize;
                // A mark that failed is retried at its `due`, not after each take.
                let urgent = full || link.blocks(&unmarked.aggregates);
                if !stop.is_cancelled() && !unmarked.retrying && urgent {
                    self.mark(&link, &mut unmarked).await;
                }
                if delivered == Some(false) {
                    failures = failures.saturating_add(1);
                    if !self
                        .pause_handoff(&link, &mut unmarked, &stop, failures)
                        .await
                    {
                        break;
                    }
                } else if delivered == Some(true) {
                    failures = 0;
                }
            }
            self.stop_handoff(&link, &mut unmarked).await;
        })
    }

    /// After a failed take: the link closes (writes leave their rows to the
    /// claim); what was published is marked, what was handed over is
    /// published (or left to the claim) and marked; then the loop pauses,
    /// marking again if a mark failed. False when `stop` came meanwhile.
    async fn pause_handoff(
        &self,
        link: &OutboxLink,
        unmarked: &mut Unmarked,
        stop: &CancellationToken,
        failures: u32,
    ) -> bool {
        link.close();
        loop {
            if stop.is_cancelled() {
                return false;
            }
            if !unmarked.retrying {
                self.mark(link, unmarked).await;
            }
            if stop.is_cancelled() {
                return false;
            }
            let take = self.deliver_take(link, self.config.lease / 3, unmarked);
            if self.soon_after(stop, take).await != Some(Some(true)) {
                break;
            }
        }
        let resume = Instant::now() + self.pause_after(failures);
        loop {
            let due = unmarked.due;
            tokio::select! {
                biased;
                () = stop.cancelled() => return false,
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.mark(link, unmarked).await;
                }
                () = tokio::time::sleep_until(resume) => break,
            }
        }
        link.open(self.lease());
        true
    }

    /// At stop: the link closes; what was published is marked, what was
    /// handed over is published within a sixth of the lease and marked — a
    /// third of the lease in all.
    async fn stop_handoff(&self, link: &OutboxLink, unmarked: &mut Unmarked) {
        link.close();
        let bound = self.config.lease / 12;
        self.mark_within(link, unmarked, bound).await;
        let deadline = Instant::now() + self.config.lease / 6;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.deliver_take(link, left, unmarked).await != Some(true) {
                break;
            }
        }
        self.mark_within(link, unmarked, bound).await;
    }

    /// Whether the unmarked rows' marks are owed (they failed until less
    /// than a thirtieth of the lease is left before a take's margin).
    fn marks_owed(&self, unmarked: &Unmarked) -> bool {
        unmarked
            .time_left(self.lease() / 5)
            .is_some_and(|left| left < self.config.lease / 30)
    }

    async fn mark(&self, link: &OutboxLink, unmarked: &mut Unmarked) {
        self.mark_within(link, unmarked, self.config.lease / 3)
            .await;
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
    async fn mark_within(&self, link: &OutboxLink, unmarked: &mut Unmarked, bound: Duration) {
        let pending = std::mem::take(unmarked);
        if pending.rows.is_empty() {
            return;
        }
        let claims_left = pending.time_left(chrono::Duration::zero()).unwrap_or(bound);
        let bound = bound.min(claims_left.max(MARK_RETRY));
        let ids: Vec<i64> = pending.rows.iter().map(|(id, _)| *id).collect();
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
            if link.unblock(&pending.aggregates) {
                link.wakeup().notify_one();
            }
            return;
        };
        let margin = self.lease() / 10;
        let kept: Vec<_> = pending
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
            if link.unblock(&pending.aggregates) {
                link.wakeup().notify_one();
            }
            return;
        }
        *unmarked = Unmarked {
            rows: kept,
            aggregates: pending.aggregates,
            due: Some(Instant::now() + MARK_RETRY),
            retrying: true,
        };
    }

    /// Takes up to a batch from `link` and publishes it within `bound`,
    /// ending a fifth of the lease before the first claim of its rows, or
    /// of the rows waiting for their mark, ends; adds what it published to
    /// `unmarked` as each publish is confirmed. Rows whose claim ends
    /// within half a lease are left to the claim. `None` when there was
    /// nothing to publish or marks are owed first; else whether every row
    /// was published.
    async fn deliver_take(
        &self,
        link: &OutboxLink,
        bound: Duration,
        unmarked: &mut Unmarked,
    ) -> Option<bool> {
        let margin = self.lease() / 5;
        if self.marks_owed(unmarked) {
            // A take now would be cut off at once, its publishes in flight
            // unmarked; the rows stay (and ring) for after the marks.
            link.ring_if_waiting();
            return None;
        }
        let now = Utc::now();
        let take = link.take(self.config.batch as usize, now + self.lease() / 2);
        if take.stale > 0 {
            // The loop lagged half a lease behind the writes: they wait for
            // their claim to end (up to a lease) instead of going out now.
            metrics::counter!("outbox_relay_failures_total", "kind" => "late")
                .increment(take.stale as u64);
            tracing::warn!(
                rows = take.stale,
                "outbox rows handed over too late for their claim; they go out when it ends"
            );
        }
        let until = take.until?;
        let mut left = (until - now - margin)
            .to_std()
            .unwrap_or_default()
            .min(bound);
        if let Some(marks_due) = unmarked.time_left(margin) {
            left = left.min(marks_due);
        }
        let delivery = self.deliver_handed(take.rows, until, unmarked);
        match tokio::time::timeout(left, delivery).await {
            Ok(failed) => Some(failed == 0),
            Err(_) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "stalled").increment(1);
                tracing::warn!(
                    "outbox hand-off ran too long for its claims and was abandoned; its rows are claimed again when their claim ends"
                );
                Some(false)
            }
        }
    }

    /// Publishes rows the writes of this process handed over (decision 70),
    /// in `id` order: one row per aggregate at a time, an aggregate's next
    /// row only after its previous one was published. The rows after a
    /// failed one keep their claim until it runs out, then wait behind it
    /// for the claim like any row. Adds each published row to `unmarked`
    /// as its publish is confirmed; returns how many rows failed.
    async fn deliver_handed(
        &self,
        rows: Vec<OutboxEntry>,
        claim_ends: DateTime<Utc>,
        unmarked: &mut Unmarked,
    ) -> usize {
        let mut failures = 0;
        let mut stuck: HashSet<String> = HashSet::new();
        let mut rest = rows;
        while !rest.is_empty() {
            let mut seen = HashSet::new();
            let (round, later): (Vec<OutboxEntry>, Vec<OutboxEntry>) = rest
                .into_iter()
                .filter(|row| !stuck.contains(&row.aggregate))
                .partition(|row| seen.insert(row.aggregate.clone()));
            let mut publishes: FuturesUnordered<_> = round
                .iter()
                .map(|row| async move { (row, self.publish(row).await) })
                .collect();
            let mut failed = Vec::new();
            while let Some((row, outcome)) = publishes.next().await {
                match outcome {
                    Ok(()) => unmarked.add(row, claim_ends, self.config.mark_every),
                    Err(error) => failed.push((row, error)),
                }
            }
            drop(publishes);
            let failed = self.record_failures(failed).await;
            failures += failed.len();
            stuck.extend(failed.into_iter().map(|row| row.aggregate.clone()));
            rest = later;
        }
        failures
    }
}
