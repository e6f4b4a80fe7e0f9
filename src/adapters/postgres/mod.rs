//! PostgreSQL (diesel-async over a deadpool pool): the identity store,
//! embedded migrations (run at start-up and by `smap-identity migrate`) and
//! a health check.

mod models;
mod schema;
mod store;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use diesel_async::{
    AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
    pooled_connection::{AsyncDieselConnectionManager, deadpool::Pool},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use serde_json::json;

pub use store::PgIdentityStore;

use crate::ports::{Health, HealthIndicator};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<AsyncPgConnection>;

/// A pool of at most `max_size` connections; waiting for one, or for a new
/// connection, is bounded so an outage answers fast.
pub fn pool(url: &str, max_size: usize) -> anyhow::Result<PgPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// Runs the pending migrations; returns the versions applied.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let connection = pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
    // The harness blocks in place (sync Diesel underneath): keep it off the
    // async workers' hands by running it on a blocking thread.
    tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(connection);
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))
    })
    .await?
}

pub struct PgHealth {
    pool: PgPool,
}

impl PgHealth {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl HealthIndicator for PgHealth {
    fn component(&self) -> &'static str {
        "database"
    }

    fn required_for_readiness(&self) -> bool {
        true
    }

    async fn check(&self) -> Health {
        let started = Instant::now();
        let check = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(3), check).await {
            Ok(Ok(_)) => {
                let status = self.pool.status();
                Health::up(
                    "postgres",
                    json!({
                        "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
                        "pool_size": status.size,
                        "pool_available": status.available,
                        "pool_max": status.max_size,
                    }),
                )
            }
            Ok(Err(e)) => Health::down("postgres", json!({ "error": e })),
            Err(_) => Health::down("postgres", json!({ "error": "no answer within 3 s" })),
        }
    }
}
