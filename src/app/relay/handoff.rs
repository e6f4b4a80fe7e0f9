//! The relay's hand-off loop (decision 70): the rows this process's writes
//! claimed for it as they committed, published at once, without a claim
//! statement, in order per aggregate; the claim loops remain the safety net
//! for whatever it cannot publish.

use std::{collections::HashSet, sync::Arc};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ports::{OutboxEntry, StoreError};

use super::{OutboxRelay, Pass, chain};

impl OutboxRelay {
    /// Publishes the rows this process's writes hand over as they commit
    /// (decision 70), one take after another: what commits while a take is
    /// published goes out with the next. After a take with a failure (the
    /// broker down) the link closes for a growing pause, so writes leave
    /// their rows to the claim, which backs off too. At `stop`, the link
    /// closes and what was handed over is published before the task ends,
    /// bounded by the lease like a pass.
    pub(super) fn spawn_handoff(self: Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let link = self.store.outbox_link();
        link.open(self.lease());
        tokio::spawn(async move {
            let mut failures: u32 = 0;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = link.ready() => {}
                }
                let (rows, blocked) = link.take();
                let delivered = self.bounded(self.deliver_handed(rows)).await;
                if blocked {
                    // A row left to the claim behind one of these: its
                    // turn may have come.
                    link.wakeup().notify_one();
                }
                if delivered {
                    failures = 0;
                    continue;
                }
                failures = failures.saturating_add(1);
                let rest = link.close();
                self.bounded(self.deliver_handed(rest)).await;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(self.pause_after(failures)) => {}
                }
                link.open(self.lease());
            }
            let rest = link.close();
            if !rest.is_empty() {
                self.bounded(self.deliver_handed(rest)).await;
            }
        })
    }

    /// One delivery of handed-over rows, bounded and reported like a pass;
    /// true when every row was published and marked.
    async fn bounded(&self, delivery: impl Future<Output = Result<Pass, StoreError>>) -> bool {
        match tokio::time::timeout(self.config.lease, delivery).await {
            Ok(Ok(pass)) => pass.failed == 0,
            Ok(Err(error)) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "store").increment(1);
                tracing::warn!(error = %chain(error), "outbox hand-off not recorded; the rows go out again when their claim runs out");
                false
            }
            Err(_) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "stalled").increment(1);
                tracing::warn!(
                    "outbox hand-off outlived its lease and was abandoned; its rows are claimed again when the lease ends"
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
