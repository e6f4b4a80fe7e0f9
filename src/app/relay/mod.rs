//! The outbox relay (`EVENT_DELIVERY=outbox`, DESIGN §10). Every API process
//! runs one: it claims outbox rows in batches (one row per aggregate, the
//! oldest unpublished one, under a lease so two relays never hold one row),
//! publishes them all at once through the configured publisher (the
//! dual-publish composite included) with confirms, and marks them published.
//! It wakes on the store's notification (a NOTIFY from any process on
//! PostgreSQL, the in-process signal in memory), polls as a fallback, backs
//! off while the broker refuses, and stops between two passes when told.
//! Each message continues the trace of the request that wrote its row.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    domain::events::EventService,
    ports::{IdentityStore, OutboxEntry, StoreError},
};

/// A store error with its causes ("identity store unavailable: canceling
/// statement due to statement timeout"), as the runbook quotes them.
fn chain(error: StoreError) -> String {
    format!("{:#}", anyhow::Error::from(error))
}

/// How often worker 0 refreshes `outbox_pending` and
/// `outbox_oldest_age_seconds`: the backlog read scans the unpublished rows'
/// index, dead entries included, for milliseconds (5 ms a read in the
/// outbox benchmark), and the alert on it waits five minutes.
const GAUGES_EVERY: Duration = Duration::from_secs(10);

/// Published rows forgotten per purge statement (decision 65): an outage's
/// worth of rows goes in short statements between passes.
const PURGE_BATCH: u32 = 5_000;

#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    /// Rows claimed (and published concurrently) per pass.
    pub batch: u32,
    /// How long a claim keeps other relays off a row: longer than a publish
    /// takes (confirm timeout included), short enough that a relay killed
    /// mid-pass delays its rows only briefly.
    pub lease: Duration,
    /// The polling fallback when no notification arrives.
    pub poll: Duration,
    /// First and longest pause after a failed pass (doubling in between).
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Published rows are kept this long (for inspection), then deleted.
    pub retention: Duration,
    /// Passes run at once in this process. A pass waits for its claim, its
    /// confirms and its mark in turn; a second one claims (rows the first
    /// holds are skipped, and an aggregate's newer row stays behind its
    /// older unpublished one) while the first waits, so the broker and the
    /// database are both kept busy. Measured in docs/benchmarks.md.
    pub workers: usize,
    /// How long a row the hand-off published waits for its mark (decision
    /// 72): the marks of that time go in one statement. A process killed
    /// in between sends these rows again when their claim ends, with the
    /// same event ids.
    pub mark_every: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            retention: Duration::from_secs(24 * 3600),
            workers: 2,
            mark_every: Duration::from_millis(50),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    pub published: usize,
    pub failed: usize,
}

pub struct OutboxRelay {
    store: Arc<dyn IdentityStore>,
    events: Arc<EventService>,
    config: RelayConfig,
}

impl OutboxRelay {
    pub fn new(
        store: Arc<dyn IdentityStore>,
        events: Arc<EventService>,
        config: RelayConfig,
    ) -> Self {
        Self {
            store,
            events,
            config,
        }
    }

    /// Claims one batch, publishes it, records the outcome of every row.
    pub async fn run_once(&self) -> Result<Pass, StoreError> {
        let now = Utc::now();
        let batch = self
            .store
            .claim_outbox(now, self.config.batch, self.lease())
            .await?;
        self.deliver(&batch).await.map(|(pass, _)| pass)
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(30))
    }

    /// Publishes `batch` (one row per aggregate, claimed by this pass) all
    /// at once, then records the outcome of every row; returns the pass and
    /// the rows that failed.
    async fn deliver<'a>(
        &self,
        batch: &'a [OutboxEntry],
    ) -> Result<(Pass, Vec<&'a OutboxEntry>), StoreError> {
        let (published, failed) = self.publish_all(batch).await;
        // The published rows are marked first: a pass abandoned at its
        // lease (decision 64) while it records failures one by one would
        // otherwise send them all again.
        self.store.outbox_published(&published, Utc::now()).await?;
        let failed = self.record_failures(failed).await;
        let pass = Pass {
            claimed: batch.len(),
            published: published.len(),
            failed: failed.len(),
        };
        Ok((pass, failed))
    }

    /// Runs passes until `stop`: at once after a full batch, after a
    /// notification or the poll interval when idle, after a growing pause
    /// when a pass failed (broker down: no hot loop). A pass under way
    /// finishes, or is abandoned a third of the lease after the stop, before
    /// the task ends: a stop waits at most two thirds of the lease (20 s,
    /// the hand-off's drain included; inside the 45 s shutdown grace).
    pub fn spawn(self, stop: CancellationToken) -> JoinHandle<()> {
        let relay = Arc::new(self);
        let mut workers: Vec<JoinHandle<()>> = (0..relay.config.workers.max(1))
            .map(|worker| relay.clone().spawn_worker(worker, stop.clone()))
            .collect();
        workers.push(relay.clone().spawn_handoff(stop));
        tokio::spawn(async move {
            for worker in workers {
                if let Err(error) = worker.await {
                    tracing::error!(error = %error, "outbox relay worker ended abnormally");
                }
            }
        })
    }

    /// One loop of passes; worker 0 also keeps the gauges and purges.
    fn spawn_worker(self: Arc<Self>, worker: usize, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let link = self.store.outbox_link();
            let mut failures: u32 = 0;
            let mut last_gauges = tokio::time::Instant::now() - Duration::from_secs(60);
            let mut last_purge = tokio::time::Instant::now();
            let mut purge_more = false;
            loop {
                if stop.is_cancelled() {
                    return;
                }
                let Some(pass) = self.soon_after(&stop, self.bounded_pass()).await else {
                    return;
                };
                let pause = self.pause_for(pass, &mut failures, worker);
                if stop.is_cancelled() {
                    // No gauges or purge after a stop: each could wait for
                    // a connection and a statement past the shutdown grace.
                    return;
                }
                if worker == 0 && last_gauges.elapsed() >= GAUGES_EVERY {
                    self.record_backlog().await;
                    last_gauges = tokio::time::Instant::now();
                }
                if worker == 0 && (purge_more || last_purge.elapsed() >= Duration::from_secs(600)) {
                    purge_more = self.purge().await;
                    last_purge = tokio::time::Instant::now();
                }
                let Some(pause) = pause else { continue };
                tokio::select! {
                    () = stop.cancelled() => return,
                    // While failing, a notification does not cut the pause.
                    () = link.wakeup().notified(), if failures == 0 => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        })
    }

    /// One pass, bounded by the lease: a pass that outlives its lease has
    /// lost its claim (another relay may take the rows), so it is
    /// abandoned, not awaited for ever (`None`). Seen in benchmarks: a
    /// relay silent for 120 s with 10 000 rows waiting, cause not found; a
    /// bounded pass turns such a stall into a logged, counted retry.
    async fn bounded_pass(&self) -> Option<Result<Pass, StoreError>> {
        let pass = tokio::time::timeout(self.config.lease, self.run_once()).await;
        if pass.is_err() {
            metrics::counter!("outbox_relay_failures_total", "kind" => "stalled").increment(1);
            tracing::warn!(
                lease_ms = u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX),
                "outbox relay pass outlived its lease and was abandoned; its rows are claimed \
                 again when the lease ends (a row it published but did not mark goes out \
                 again, with the same event id)"
            );
        }
        pass.ok()
    }

    /// `work`, or `None` when it is still under way a third of a lease
    /// after `stop`: a stop waits for a pass (or a take) at most that long,
    /// not its whole lease. Its rows keep their claim until it ends and are
    /// claimed again then (a row published but not marked goes out again,
    /// with the same event id).
    async fn soon_after<T>(
        &self,
        stop: &CancellationToken,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        let cut_off = async {
            stop.cancelled().await;
            tokio::time::sleep(self.config.lease / 3).await;
        };
        tokio::select! {
            out = work => Some(out),
            () = cut_off => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "stalled").increment(1);
                tracing::warn!(
                    "outbox relay stopped with a delivery under way; its rows are claimed again \
                     when their claim ends"
                );
                None
            }
        }
    }

    /// How long to wait before the next pass (`None`: at once, the batch
    /// was full), counting failed passes in `failures`. Idle, worker 0
    /// polls every `poll` and the others ten times slower: with rows handed
    /// over at their commit (decision 70) and the others woken by NOTIFY,
    /// the poll only finds rows whose claim or retry time ran out, and
    /// each idle claim costs the database milliseconds (docs/benchmarks.md).
    fn pause_for(
        &self,
        pass: Option<Result<Pass, StoreError>>,
        failures: &mut u32,
        worker: usize,
    ) -> Option<Duration> {
        match pass {
            Some(Ok(pass)) if pass.failed == 0 => {
                *failures = 0;
                let poll = if worker == 0 {
                    self.config.poll
                } else {
                    self.config.poll * 10
                };
                (pass.claimed < self.config.batch as usize).then_some(poll)
            }
            Some(Err(error)) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "store").increment(1);
                tracing::warn!(error = %chain(error), "outbox relay pass failed");
                *failures = failures.saturating_add(1);
                Some(self.pause_after(*failures))
            }
            // Rows that failed to publish, or a stalled pass.
            Some(Ok(_)) | None => {
                *failures = failures.saturating_add(1);
                Some(self.pause_after(*failures))
            }
        }
    }

    fn pause_after(&self, failures: u32) -> Duration {
        self.retry_policy()
            .jittered_backoff_before(failures + 1, rand::random())
    }

    /// Pauses double from `min_backoff` to `max_backoff`, ± 25 % so that
    /// relays that failed together (a broker outage) do not retry in step.
    fn retry_policy(&self) -> crate::domain::retry::RetryPolicy {
        crate::domain::retry::RetryPolicy::exponential(u32::MAX, self.config.min_backoff)
            .with_max_backoff(self.config.max_backoff)
            .with_jitter_percent(25)
    }

    /// Forgets one batch of rows published before the retention; true
    /// when the batch was full (more wait: purge again on the next round,
    /// between passes, rather than in one long statement).
    async fn purge(&self) -> bool {
        let retention = chrono::Duration::from_std(self.config.retention)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        match self
            .store
            .purge_outbox(Utc::now() - retention, PURGE_BATCH)
            .await
        {
            Ok(0) => false,
            Ok(n) => {
                tracing::info!(rows = n, "published outbox rows forgotten");
                n >= u64::from(PURGE_BATCH)
            }
            Err(error) => {
                tracing::warn!(error = %chain(error), "published outbox rows not forgotten");
                false
            }
        }
    }
}

mod handoff;
mod health;
mod marks;
mod publish;

pub use health::OutboxHealth;

#[cfg(test)]
mod tests;
