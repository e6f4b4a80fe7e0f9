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
use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::adapters::sampling::continue_trace;
use crate::{
    adapters::bus::message::trace_context_text,
    domain::events::{EventEnvelope, EventService},
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

    /// Publishes `batch` (one row per aggregate, claimed: by a pass, or by
    /// the writes that handed them over) all at once, then records the
    /// outcome of every row; returns the pass and the rows that failed.
    async fn deliver<'a>(
        &self,
        batch: &'a [OutboxEntry],
    ) -> Result<(Pass, Vec<&'a OutboxEntry>), StoreError> {
        let mut pass = Pass {
            claimed: batch.len(),
            ..Pass::default()
        };
        if batch.is_empty() {
            return Ok((pass, Vec::new()));
        }
        // One row per aggregate in a batch: publishing them all at once
        // keeps each aggregate's order.
        let outcomes = join_all(batch.iter().map(|row| self.publish(row))).await;
        let mut published = Vec::new();
        let mut failed = Vec::new();
        for (row, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(()) => published.push(row.id),
                Err(error) => failed.push((row, error)),
            }
        }
        // The published rows are marked first: a pass abandoned at its
        // lease (decision 64) while it records failures one by one would
        // otherwise send them all again.
        pass.published = published.len();
        pass.failed = failed.len();
        self.store.outbox_published(&published, Utc::now()).await?;
        let mut rows = Vec::with_capacity(failed.len());
        for (row, error) in failed {
            metrics::counter!("outbox_relay_failures_total", "kind" => "publish").increment(1);
            let retry_at = Utc::now() + self.backoff_for(row.attempts + 1);
            if let Err(e) = self.store.outbox_failed(row.id, &error, retry_at).await {
                tracing::warn!(outbox_id = row.id, error = %e, "outbox failure not recorded; the lease will expire");
            }
            rows.push(row);
        }
        Ok((pass, rows))
    }

    /// The pause before a row is tried again after `attempts` failures.
    fn backoff_for(&self, attempts: u32) -> chrono::Duration {
        let pause = self
            .retry_policy()
            .jittered_backoff_before(attempts + 1, rand::random());
        chrono::Duration::from_std(pause).unwrap_or_else(|_| chrono::Duration::seconds(30))
    }

    /// Publishes one row in a span that continues the writer's trace.
    async fn publish(&self, row: &OutboxEntry) -> Result<(), String> {
        let event = match EventEnvelope::reseal(row.body.clone().into_bytes()) {
            Ok(event) => event,
            Err(e) => return Err(self.unpublishable(row, &e.to_string())),
        };
        let span = continue_trace(trace_context_text(&row.trace), || {
            tracing::info_span!(
                "outbox.relay",
                outbox.id = row.id,
                outbox.aggregate = %row.aggregate,
                messaging.message.id = %row.event_id,
            )
        });
        match self
            .events
            .publish_sealed_once(&event)
            .instrument(span)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(outbox_id = row.id, event_id = %row.event_id, attempts = row.attempts + 1, error = %error, "outbox row not published; will retry");
                Err(error.to_string())
            }
        }
    }

    fn unpublishable(&self, row: &OutboxEntry, error: &str) -> String {
        tracing::error!(outbox_id = row.id, event_id = %row.event_id, error, "outbox row cannot be read back as an event");
        format!("unreadable row: {error}")
    }

    /// Refreshes `outbox_pending` and `outbox_oldest_age_seconds`.
    pub async fn record_backlog(&self) {
        match self.store.outbox_backlog().await {
            Ok(backlog) => {
                metrics::gauge!("outbox_pending").set(backlog.pending as f64);
                let age = backlog
                    .oldest
                    .map(|at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                metrics::gauge!("outbox_oldest_age_seconds").set(age);
            }
            Err(error) => {
                metrics::counter!("outbox_relay_failures_total", "kind" => "store").increment(1);
                tracing::warn!(error = %chain(error), "outbox backlog not read");
            }
        }
    }

    /// Runs passes until `stop`: at once after a full batch, after a
    /// notification or the poll interval when idle, after a growing pause
    /// when a pass failed (broker down: no hot loop). A pass under way
    /// finishes, or is abandoned at its lease, before the task ends: a stop
    /// waits at most the lease (30 s, inside the 45 s shutdown grace).
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
                let pause = self.pause_for(self.bounded_pass().await, &mut failures, worker);
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

pub use health::OutboxHealth;

#[cfg(test)]
mod tests;
