//! The outbox backlog: the relay's gauges, and the `/health` component.

use std::sync::Arc;

use chrono::Utc;

use crate::ports::IdentityStore;

use super::{OutboxRelay, chain};

/// `/health` shows the backlog as the `outbox` component: informational
/// (a backlog is the broker's outage, which `rabbitmq` already reports), so
/// it is up unless the outbox cannot be read.
pub struct OutboxHealth {
    store: Arc<dyn IdentityStore>,
}

impl OutboxHealth {
    pub fn new(store: Arc<dyn IdentityStore>) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl crate::ports::HealthIndicator for OutboxHealth {
    fn component(&self) -> &'static str {
        "outbox"
    }

    fn required_for_readiness(&self) -> bool {
        false
    }

    async fn check(&self) -> crate::ports::Health {
        use crate::ports::Health;
        match self.store.outbox_backlog().await {
            Ok(backlog) => {
                let age = backlog
                    .oldest
                    .map(|at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                Health::up(
                    "relay",
                    serde_json::json!({
                        "pending": backlog.pending,
                        "oldest_age_seconds": age,
                    }),
                )
            }
            Err(error) => Health::down("relay", serde_json::json!({ "error": error.to_string() })),
        }
    }
}

impl OutboxRelay {
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
}
