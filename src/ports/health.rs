//! `HealthIndicator`: one dependency's answer to "are you usable right now?".

use async_trait::async_trait;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub healthy: bool,
    /// Which adapter answered (`memory`, `rabbitmq`, ...).
    pub adapter: &'static str,
    /// Facts worth showing an operator (exchange types, latency, the error).
    pub details: serde_json::Value,
}

impl Health {
    pub fn up(adapter: &'static str, details: serde_json::Value) -> Self {
        Self {
            healthy: true,
            adapter,
            details,
        }
    }

    pub fn down(adapter: &'static str, details: serde_json::Value) -> Self {
        Self {
            healthy: false,
            adapter,
            details,
        }
    }
}

#[async_trait]
pub trait HealthIndicator: Send + Sync {
    /// The component name in `/health` (`rabbitmq`, `redis`, `database`, ...).
    fn component(&self) -> &'static str;
    /// Whether `/ready` waits for this component.
    fn required_for_readiness(&self) -> bool;
    async fn check(&self) -> Health;
}
