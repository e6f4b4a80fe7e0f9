//! Use case: the completion relay, the safety net of the finish line. Every
//! API process runs it on a timer: it claims the recorded completions whose
//! publisher failed, died or stalled (their claim lapsed), and publishes
//! `job.completed` for each under its recorded event id. The claim makes one
//! replica publish a given completion at a time.

use super::{ProgressService, ProgressUseCaseError, service::Delivery};
use crate::domain::timestamp::Timestamp;

/// Completions claimed per round; more wait for the next round.
const BATCH: usize = 100;

/// What one round of the relay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayReport {
    /// `job.completed` events confirmed by the broker this round.
    pub published: usize,
    /// Publishes that failed this round: 0 or 1, as the round stops at the
    /// first failure.
    pub failed: usize,
    /// Completions still unpublished after the round.
    pub pending: u64,
}

impl ProgressService {
    /// One round: claim what is due, publish it. Stops at the first failed
    /// publish — the broker is most likely down, and the claims of the rest
    /// go back for the next round. Fails only when the store cannot be
    /// asked for the due completions; a failed publish is counted in the
    /// report, not returned.
    #[tracing::instrument(name = "progress.relay_completions", skip_all)]
    pub async fn relay_completions(&self) -> Result<RelayReport, ProgressUseCaseError> {
        let now = Timestamp::new(self.clock.now());
        let due = self
            .store
            .claim_due_completions(now, self.lease, BATCH)
            .await?;
        let mut report = RelayReport {
            pending: due.pending,
            ..RelayReport::default()
        };
        let mut claimed = due.claimed.iter();
        for next in claimed.by_ref() {
            match self.publish_claimed(next).await {
                Delivery::Published => {
                    report.published += 1;
                    report.pending = report.pending.saturating_sub(1);
                }
                Delivery::Failed => {
                    report.failed += 1;
                    break;
                }
            }
        }
        // Not tried this round: due again for the next one rather than at
        // the end of the lease.
        for untried in claimed {
            if let Err(error) = self.store.release(untried, now).await {
                tracing::warn!(event_id = %untried.completion.event_id, error = %error, "claim on job.completed not released; retried when it lapses");
            }
        }
        metrics::gauge!("job_completions_pending").set(report.pending as f64);
        if report.published + report.failed > 0 {
            tracing::info!(
                published = report.published,
                failed = report.failed,
                pending = report.pending,
                "completion relay round"
            );
        }
        Ok(report)
    }
}
