//! `HealthIndicator`: one dependency's answer to "are you usable right now?".

use async_trait::async_trait;
use serde::Serialize;

/// One dependency's answer, as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// Whether the dependency answered within the check's time limit and
    /// is fit for use (e.g. PostgreSQL's schema is current).
    pub healthy: bool,
    /// Which adapter answered (`memory`, `rabbitmq`, `postgres`, ...).
    pub adapter: &'static str,
    /// Facts worth showing an operator (exchange types, latency, the
    /// error); a JSON object, `error` holding the reason when down.
    pub details: serde_json::Value,
}

impl Health {
    /// A healthy answer from `adapter`, with `details`.
    pub fn up(adapter: &'static str, details: serde_json::Value) -> Self {
        Self {
            healthy: true,
            adapter,
            details,
        }
    }

    /// An unhealthy answer from `adapter`; `details` says why.
    pub fn down(adapter: &'static str, details: serde_json::Value) -> Self {
        Self {
            healthy: false,
            adapter,
            details,
        }
    }
}

/// A dependency `/health` and `/ready` ask about.
#[async_trait]
pub trait HealthIndicator: Send + Sync {
    /// The component name in `/health` (`rabbitmq`, `redis`, `database`, ...).
    fn component(&self) -> &'static str;
    /// Whether `/ready` waits for this component (Redis does not: accounts
    /// and e-mail work without it); constant for an indicator.
    fn required_for_readiness(&self) -> bool;
    /// Probes the dependency now. Never fails: an error or a probe that
    /// outlasts its time limit (2-3 s in the real adapters) is
    /// [`Health::down`] with the reason in its details.
    async fn check(&self) -> Health;
}
