//! `InMemoryHealth`: the health of an in-process adapter, which is up as long
//! as the process is.

use async_trait::async_trait;

use crate::ports::{Health, HealthIndicator};

pub struct InMemoryHealth {
    component: &'static str,
    required_for_readiness: bool,
}

impl InMemoryHealth {
    pub fn new(component: &'static str, required_for_readiness: bool) -> Self {
        Self {
            component,
            required_for_readiness,
        }
    }
}

#[async_trait]
impl HealthIndicator for InMemoryHealth {
    fn component(&self) -> &'static str {
        self.component
    }

    fn required_for_readiness(&self) -> bool {
        self.required_for_readiness
    }

    async fn check(&self) -> Health {
        Health::up(
            "memory",
            serde_json::json!({ "note": "in-process adapter" }),
        )
    }
}
