//! `RedisHealth`: PING on the state pool, with its latency and the memory
//! facts an operator needs (used vs. max memory, eviction policy), and with
//! Sentinel the master the sentinels named.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::{
    interfaces::ServerInterface,
    prelude::{ClientLike, Pool},
};
use serde_json::json;

use crate::ports::{Health, HealthIndicator};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisHealth {
    pool: Pool,
    state_db: u8,
}

impl RedisHealth {
    pub fn new(pool: Pool, state_db: u8) -> Self {
        Self { pool, state_db }
    }
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[async_trait]
impl HealthIndicator for RedisHealth {
    fn component(&self) -> &'static str {
        "redis"
    }

    fn required_for_readiness(&self) -> bool {
        // Accounts and e-mail work without Redis; only progress needs it.
        false
    }

    async fn check(&self) -> Health {
        let started = Instant::now();
        let check = async {
            let _: String = self.pool.next().ping(None).await?;
            self.pool
                .next()
                .info::<String>(Some(fred::types::InfoKind::Memory))
                .await
        };
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(info)) => {
                let used: Option<u64> =
                    info_field(&info, "used_memory").and_then(|v| v.parse().ok());
                let max: Option<u64> = info_field(&info, "maxmemory").and_then(|v| v.parse().ok());
                // For the "Redis memory above 80 %" alert (docs/ops/alerts.yml).
                if let Some(used) = used {
                    metrics::gauge!("redis_memory_used_bytes").set(used as f64);
                }
                if let Some(max) = max {
                    metrics::gauge!("redis_memory_max_bytes").set(max as f64);
                }
                let mut details = json!({
                    "state_db": self.state_db,
                    "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
                    "used_memory_bytes": used,
                    "maxmemory_bytes": max,
                    "maxmemory_policy": info_field(&info, "maxmemory_policy"),
                });
                // With Sentinel: which server is the master now (after a
                // failover, the promoted replica).
                if let Some(master) = self.pool.next().sentinel_primary() {
                    details["sentinel_master"] = json!(master.to_string());
                }
                Health::up("redis", details)
            }
            Ok(Err(e)) => Health::down("redis", json!({ "error": e.to_string() })),
            Err(_) => Health::down(
                "redis",
                json!({ "error": format!("no answer within {CHECK_TIMEOUT:?}") }),
            ),
        }
    }
}
