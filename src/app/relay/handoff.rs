//! The relay's hand-off loop (decision 70): the rows this process's writes
//! claimed for it as they committed, published at once, without a claim
//! statement, in order per aggregate; the claim loops remain the safety net
//! for whatever it cannot publish.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ports::{OutboxEntry, OutboxLink, StoreError};

use super::{OutboxRelay, Pass, chain};

/// Closes the link when the hand-off loop ends, also by a panic: writes
/// must not claim rows for a relay that no longer takes them.
struct CloseOnDrop(Arc<OutboxLink>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl OutboxRelay {
    /// Publishes the rows this process's writes hand over as they commit
    /// (decision 70), one take (at most a batch) after another: what
    /// commits while a take is published goes out with the next. After a
    /// take with a failure (the broker down) the link closes for a growing
    /// pause, so writes leave their rows to the claim, which backs off too.
    /// At `stop` the link closes and what was handed over is published,
    /// within a third of the lease (the task ends within the lease and a
    /// third of it, inside the 45 s shutdown grace).
    pub(super) fn spawn_handoff(self: Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let link = self.store.outbox_link();
        link.open(self.lease());
        tokio::spawn(async move {
            let _close = CloseOnDrop(link.clone());
            let mut failures: u32 = 0;
            loop {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    () = link.ready() => {}
                }
                let delivered = self.deliver_take(&link, self.config.lease).await;
                if link.take_blocked() {
                    // A row left to the claim behind one of these: its
                    // turn may have come.
                    link.wakeup().notify_one();
                }
                match delivered {
                    Some(true) => {
                        failures = 0;
                        continue;
                    }
                    None => continue,
                    Some(false) => {}
                }
                failures = failures.saturating_add(1);
                link.close();
                while !stop.is_cancelled()
                    && self.deliver_take(&link, self.config.lease / 3).await == Some(true)
                {
                }
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(self.pause_after(failures)) => {}
                }
                link.open(self.lease());
            }
            link.close();
            let deadline = tokio::time::Instant::now() + self.config.lease / 3;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() || self.deliver_take(&link, left).await != Some(true) {
                    break;
                }
            }
        })
    }

    /// Takes up to a batch from `link` and publishes it within `bound` and
    /// before the first claim of the take ends (less a tenth of the lease); rows whose
    /// claim ends within half a lease are left to the claim. `None` when
    /// there was nothing to publish; else whether every row was published
    /// and marked.
    async fn deliver_take(&self, link: &OutboxLink, bound: Duration) -> Option<bool> {
        let now = Utc::now();
        let take = link.take(self.config.batch as usize, now + self.lease() / 2);
        if take.stale > 0 {
            tracing::debug!(
                rows = take.stale,
                "outbox rows taken too late for their claim; left to the claim"
            );
        }
        let until = take.until?;
        let left = (until - now - self.lease() / 10)
            .to_std()
            .unwrap_or_default()
            .min(bound);
        Some(self.bounded(left, self.deliver_handed(take.rows)).await)
    }

    /// One delivery of handed-over rows, bounded and reported like a pass;
    /// true when every row was published and marked.
    async fn bounded(
        &self,
        bound: Duration,
        delivery: impl Future<Output = Result<Pass, StoreError>>,
    ) -> bool {
        match tokio::time::timeout(bound, delivery).await {
            Ok(Ok(pass)) => pass.failed == 0,
            Ok(Err(error)) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "store").increment(1);
                tracing::warn!(error = %chain(error), "outbox hand-off not recorded; the rows go out again when their claim runs out");
                false
            }
            Err(_) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "stalled").increment(1);
                tracing::warn!(
                    "outbox hand-off outlived its claim and was abandoned; its rows are claimed again when the claim ends"
                );
                false
            }
        }
    }

    /// Publishes rows the writes of this process handed over (decision 70),
    /// in `id` order: one row per aggregate at a time, an aggregate's next
    /// row only after its previous one was published. The rows after a
    /// failed one keep their claim until it runs out, then wait behind it
    /// for the claim like any row.
    async fn deliver_handed(&self, rows: Vec<OutboxEntry>) -> Result<Pass, StoreError> {
        let mut total = Pass::default();
        let mut stuck: HashSet<String> = HashSet::new();
        let mut rest = rows;
        while !rest.is_empty() {
            let mut seen = HashSet::new();
            let (round, later): (Vec<OutboxEntry>, Vec<OutboxEntry>) = rest
                .into_iter()
                .filter(|row| !stuck.contains(&row.aggregate))
                .partition(|row| seen.insert(row.aggregate.clone()));
            let (pass, failed) = self.deliver(&round).await?;
            stuck.extend(failed.into_iter().map(|row| row.aggregate.clone()));
            total.claimed += pass.claimed;
            total.published += pass.published;
            total.failed += pass.failed;
            rest = later;
        }
        Ok(total)
    }
}
