//! Publishing outbox rows, each in a span that continues its writer's
//! trace, and recording the rows that failed (with their retry time).

use chrono::Utc;
use futures_util::future::join_all;
use tracing::Instrument;

use crate::adapters::sampling::continue_trace;
use crate::{
    adapters::bus::message::trace_context_text, domain::events::EventEnvelope, ports::OutboxEntry,
};

use super::OutboxRelay;

impl OutboxRelay {
    /// Publishes `batch` all at once (one row per aggregate in a batch, so
    /// each aggregate's order holds): the ids published, the rows that
    /// failed with why.
    pub(super) async fn publish_all<'a>(
        &self,
        batch: &'a [OutboxEntry],
    ) -> (Vec<i64>, Vec<(&'a OutboxEntry, String)>) {
        let outcomes = join_all(batch.iter().map(|row| self.publish(row))).await;
        let mut published = Vec::new();
        let mut failed = Vec::new();
        for (row, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(()) => published.push(row.id),
                Err(error) => failed.push((row, error)),
            }
        }
        (published, failed)
    }

    /// Records each failed row's error and its retry time (its claim until
    /// then); returns the rows.
    pub(super) async fn record_failures<'a>(
        &self,
        failed: Vec<(&'a OutboxEntry, String)>,
    ) -> Vec<&'a OutboxEntry> {
        let mut rows = Vec::with_capacity(failed.len());
        for (row, error) in failed {
            metrics::counter!("outbox_relay_failures_total", "kind" => "publish").increment(1);
            let retry_at = Utc::now() + self.backoff_for(row.attempts + 1);
            if let Err(e) = self.store.outbox_failed(row.id, &error, retry_at).await {
                tracing::warn!(outbox_id = row.id, error = %e, "outbox failure not recorded; the lease will expire");
            }
            rows.push(row);
        }
        rows
    }

    /// The pause before a row is tried again after `attempts` failures.
    fn backoff_for(&self, attempts: u32) -> chrono::Duration {
        let pause = self
            .retry_policy()
            .jittered_backoff_before(attempts + 1, rand::random());
        chrono::Duration::from_std(pause).unwrap_or_else(|_| chrono::Duration::seconds(30))
    }

    /// Publishes one row in a span that continues the writer's trace.
    pub(super) async fn publish(&self, row: &OutboxEntry) -> Result<(), String> {
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
}
