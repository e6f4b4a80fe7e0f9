//! The relay's hand-off loop (decision 70): the rows this process's writes
//! claimed for it as they committed, published at once, without a claim
//! statement, in order per aggregate; the claim loops remain the safety net
//! for whatever it cannot publish. A take does not wait for the confirms
//! of the one before (decision 74). Published rows are marked in batches
//! (decision 72), at most `mark_every` after their confirm and before
//! their claim ends unless the database stalls.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::ports::{OutboxEntry, OutboxLink};

use super::{
    OutboxRelay,
    marks::{Pending, lock, noting_stop},
};

/// Closes the link when the hand-off loop ends, also by a panic: writes
/// must not claim rows for a relay that no longer takes them.
struct CloseOnDrop(Arc<OutboxLink>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Takes published at once at most: a take does not wait for the confirms
/// of the takes before it (decision 74), but a broker that stopped
/// answering does not pile up takes without end.
const MAX_FLIGHTS: usize = 16;

/// How `drain` ends: after a failed take, when the stop comes (noting
/// when, as the loop does); at the stop, at the given time.
enum Drain<'a> {
    AfterFailure(&'a CancellationToken, &'a mut Option<Instant>),
    AtStop(Instant),
}

impl OutboxRelay {
    /// Publishes the rows this process's writes hand over as they commit
    /// (decision 70): each ring starts a take (at most a batch) at once,
    /// while the takes before it still await their confirms (decision 74;
    /// up to `MAX_FLIGHTS`). Takes never share an aggregate: a write hands
    /// a row over only when its aggregate has no older unpublished row, and
    /// a published row counts as unpublished until its mark. The published
    /// rows are marked together `mark_every` after the first of them, also
    /// while takes are in flight, at once when a batch waits or a write
    /// waits behind one of them (unless a mark failed: the next waits for
    /// its retry time); a take ends a fifth of the lease before the first
    /// claim of its rows or of the rows waiting for their mark ends, and
    /// none starts while those marks are owed. After a take with a failure
    /// (the broker down) the link closes, the takes in flight end, and the
    /// hand-off pauses for a growing time, so writes leave their rows to
    /// the claim, which backs off too. At `stop` the takes in flight get a
    /// third of the lease, then the link closes and what is left is
    /// marked, published and marked within another third (the task ends
    /// within 20 s, inside the 45 s grace).
    pub(super) fn spawn_handoff(self: Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let link = self.store.outbox_link();
        link.open(self.lease());
        tokio::spawn(async move {
            let _close = CloseOnDrop(link.clone());
            let pending = Pending::default();
            let mut flights = FuturesUnordered::new();
            let mut failures: u32 = 0;
            let mut stopped_at = None;
            loop {
                let (due, owed) = {
                    let unmarked = lock(&pending);
                    (unmarked.due, self.marks_owed(&unmarked))
                };
                // While marks are owed (they failed), a take waits for them:
                // it would be cut off at once. The ring keeps.
                let room = flights.len() < MAX_FLIGHTS;
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                        noting_stop(&stop, &mut stopped_at, self.mark(&link, &pending)).await;
                    }
                    // A take in flight set `due`: loop to arm its timer.
                    () = pending.due_set.notified() => {}
                    Some(delivered) = flights.next(), if !flights.is_empty() => {
                        let (urgent, retrying) = {
                            let unmarked = lock(&pending);
                            let full = unmarked.rows.len() >= self.config.batch as usize;
                            (full || link.blocks(&unmarked.aggregates), unmarked.retrying)
                        };
                        // A mark that failed is retried at its `due`, and
                        // after a failed take what was published is marked
                        // before the takes in flight are waited for.
                        let failed = delivered == Some(false);
                        if failed {
                            link.close();
                        }
                        if !retrying && (urgent || failed) && !stop.is_cancelled() {
                            noting_stop(&stop, &mut stopped_at, self.mark(&link, &pending)).await;
                        }
                        match delivered {
                            Some(true) => failures = 0,
                            Some(false) => {
                                failures = failures.saturating_add(1);
                                let drained = Drain::AfterFailure(&stop, &mut stopped_at);
                                if !self.drain(&mut flights, &link, &pending, drained).await
                                    || !self.pause_handoff(&link, &pending, &stop, failures).await
                                {
                                    break;
                                }
                            }
                            None => {}
                        }
                    }
                    () = link.ready(), if !owed && room => {
                        flights.push(self.deliver_take(&link, self.config.lease, &pending, false));
                    }
                }
            }
            // What is in flight at the stop gets a third of the lease from it.
            link.close();
            let until = stopped_at.unwrap_or_else(Instant::now) + self.config.lease / 3;
            self.drain(&mut flights, &link, &pending, Drain::AtStop(until))
                .await;
            drop(flights);
            self.stop_handoff(&link, &pending).await;
        })
    }

    /// Waits for the takes in `flights`, marking what they publish when it
    /// is due (a drained take's rows do not wait for the slowest, nor for
    /// `stop_handoff`: a row confirmed late in its claim is due soon).
    /// After a failure, gives up when `stop` comes; at the stop, at its
    /// time (the takes left are dropped: their rows go out again when their
    /// claims end; marks run within that time too). True when every take
    /// ended.
    async fn drain<F: Future<Output = Option<bool>>>(
        &self,
        flights: &mut FuturesUnordered<F>,
        link: &OutboxLink,
        pending: &Pending,
        how: Drain<'_>,
    ) -> bool {
        let (stop, mut stopped_at, until) = match how {
            Drain::AfterFailure(stop, stopped_at) => (Some(stop), Some(stopped_at), None),
            Drain::AtStop(until) => (None, None, Some(until)),
        };
        let stopped = async {
            match stop {
                Some(stop) => stop.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stopped);
        loop {
            if flights.is_empty() {
                return true;
            }
            let due = lock(pending).due;
            tokio::select! {
                biased;
                () = &mut stopped => return false,
                () = tokio::time::sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => {
                    metrics::counter!("outbox_relay_failures_total", "kind" => "stalled").increment(1);
                    tracing::warn!(
                        "outbox relay stopped with a delivery under way; its rows are claimed again \
                         when their claim ends"
                    );
                    flights.clear();
                    return false;
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    match (stop, stopped_at.as_deref_mut(), until) {
                        (Some(stop), Some(at), _) => {
                            noting_stop(stop, at, self.mark(link, pending)).await;
                        }
                        // At the stop, within its time: a row confirmed late
                        // in its claim may not wait for `stop_handoff`.
                        (_, _, Some(until)) => {
                            let left = until.saturating_duration_since(Instant::now());
                            self.mark_within(link, pending, left).await;
                        }
                        _ => self.mark(link, pending).await,
                    }
                }
                () = pending.due_set.notified() => {}
                _ = flights.next() => {}
            }
        }
    }

    /// After a failed take: the link closes (writes leave their rows to the
    /// claim); what was published is marked, what was handed over is
    /// published (or left to the claim) and marked; then the loop pauses,
    /// marking again if a mark failed. False when `stop` came meanwhile.
    async fn pause_handoff(
        &self,
        link: &OutboxLink,
        pending: &Pending,
        stop: &CancellationToken,
        failures: u32,
    ) -> bool {
        link.close();
        loop {
            if stop.is_cancelled() {
                return false;
            }
            if !lock(pending).retrying {
                self.mark(link, pending).await;
            }
            if stop.is_cancelled() {
                return false;
            }
            let take = self.deliver_take(link, self.config.lease / 3, pending, true);
            if self.soon_after(stop, take).await != Some(Some(true)) {
                break;
            }
        }
        let resume = Instant::now() + self.pause_after(failures);
        loop {
            let due = lock(pending).due;
            tokio::select! {
                biased;
                () = stop.cancelled() => return false,
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.mark(link, pending).await;
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
    async fn stop_handoff(&self, link: &OutboxLink, pending: &Pending) {
        link.close();
        let bound = self.config.lease / 12;
        self.mark_within(link, pending, bound).await;
        let deadline = Instant::now() + self.config.lease / 6;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.deliver_take(link, left, pending, true).await != Some(true) {
                break;
            }
        }
        self.mark_within(link, pending, bound).await;
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
        pending: &Pending,
        one_at_a_time: bool,
    ) -> Option<bool> {
        let margin = self.lease() / 5;
        if self.marks_owed(&lock(pending)) {
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
        // Takes one after another (pause, stop) hold up the marks; in the
        // loop the marks run beside the takes in flight.
        let marks_due = one_at_a_time.then(|| lock(pending).time_left(margin));
        if let Some(marks_due) = marks_due.flatten() {
            left = left.min(marks_due);
        }
        let delivery = self.deliver_handed(take.rows, until, pending);
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
        pending: &Pending,
    ) -> usize {
        // Marked a fifth of the lease before the claim ends at the latest.
        let margin = self.lease() / 5;
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
                    Ok(()) => pending.add(row, claim_ends, self.config.mark_every, margin),
                    Err(error) => failed.push((row, error)),
                }
            }
            drop(publishes);
            let failed = if failed.is_empty() {
                Vec::new()
            } else {
                let _permit = pending.recording.acquire().await;
                self.record_failures(failed).await
            };
            failures += failed.len();
            stuck.extend(failed.into_iter().map(|row| row.aggregate.clone()));
            rest = later;
        }
        failures
    }
}
