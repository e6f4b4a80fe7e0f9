//! PostgreSQL (diesel-async over a deadpool pool): the identity store,
//! embedded migrations (run at start-up and by `smap-identity migrate`) and
//! a health check.

mod models;
mod schema;
mod store;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, deadpool::Pool},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use serde_json::json;

pub use store::PgIdentityStore;

use crate::ports::{Health, HealthIndicator};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<AsyncPgConnection>;

/// The default bound on one statement of the pool
/// (`DATABASE_STATEMENT_TIMEOUT_SECS`, decision 65): far above any
/// statement the service runs (milliseconds), far below the relay's 30 s
/// lease and the 45 s shutdown grace.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool of at most `max_size` connections, each statement bounded by
/// [`DEFAULT_STATEMENT_TIMEOUT`]; see [`pool_with_timeout`].
pub fn pool(url: &str, max_size: usize) -> anyhow::Result<PgPool> {
    pool_with_timeout(url, max_size, Some(DEFAULT_STATEMENT_TIMEOUT))
}

/// A pool of at most `max_size` connections; waiting for one, or for a new
/// connection, is bounded so an outage answers fast. Every connection sets
/// `statement_timeout` (none when `None`) as it opens: the server itself
/// cancels a statement that runs or waits for a lock longer, and frees what
/// it holds — a future dropped on our side (a relay pass past its lease, a
/// client gone) would leave it running there.
pub fn pool_with_timeout(
    url: &str,
    max_size: usize,
    statement_timeout: Option<Duration>,
) -> anyhow::Result<PgPool> {
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    let millis = statement_timeout.map(|t| t.as_millis());
    config.custom_setup = Box::new(move |url| {
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            if let Some(millis) = millis {
                diesel::sql_query(format!("SET statement_timeout = {millis}"))
                    .execute(&mut conn)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            }
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// The key of the session-level advisory lock `migrate` holds (any fixed
/// number; this one spells "smapidmg" in ASCII).
pub const MIGRATION_LOCK_KEY: i64 = 0x736d_6170_6964_6d67;

/// Runs the pending migrations; returns the versions applied.
///
/// Several processes may call this at once on one database (the replicas of
/// `serve` starting together, the migration Job): each takes the advisory
/// lock [`MIGRATION_LOCK_KEY`] first, on a connection taken out of the pool
/// for good, so they migrate one after the other and the later ones find
/// nothing pending. Closing that connection releases the lock whatever
/// happened to the migrations; it never goes back to the pool holding it.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let connection = pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
    let mut connection = deadpool::managed::Object::take(connection);
    // Unbounded on this connection only (it never returns to the pool): the
    // lock waits for another process's migrations, and a migration may
    // rewrite a large table.
    diesel::sql_query("SET statement_timeout = 0")
        .execute(&mut connection)
        .await
        .map_err(|e| anyhow::anyhow!("lifting the statement timeout for migrations: {e}"))?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(&mut connection)
        .await
        .map_err(|e| anyhow::anyhow!("taking the migration lock: {e}"))?;
    // The harness blocks in place (sync Diesel underneath): keep it off the
    // async workers' hands by running it on a blocking thread.
    let (mut connection, applied) = tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(connection);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("migrations failed: {e}"));
        (harness.into_inner(), applied)
    })
    .await?;
    // Released explicitly so a waiting process goes on at once; dropping the
    // connection right after would release it too.
    if let Err(error) = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(&mut connection)
        .await
    {
        tracing::warn!(%error, "releasing the migration lock; closing its connection instead");
    }
    applied
}

/// The versions of the embedded migrations the database has not applied
/// (all of them while the migrations table does not exist yet).
pub async fn pending_migrations(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let exists: Vec<Applied> = diesel::sql_query(
        "SELECT 'x' AS version FROM pg_catalog.pg_class \
         WHERE oid = to_regclass('__diesel_schema_migrations')",
    )
    .load(conn)
    .await?;
    let applied: Vec<String> = if exists.is_empty() {
        Vec::new()
    } else {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Applied>(conn)
            .await?
            .into_iter()
            .map(|a| a.version)
            .collect()
    };
    let embedded = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("reading the embedded migrations: {e}"))?;
    Ok(embedded
        .iter()
        .map(|m| m.name().version().to_string())
        .filter(|v| !applied.contains(v))
        .collect())
}

/// The database check of `/health` and `/ready`: the database answers and
/// its schema is current. Until every embedded migration is applied (by
/// another process or the migration Job when `MIGRATE_ON_START=false`), it
/// reports the pending versions and the process is not ready. Once current,
/// a schema stays current for this binary: later checks only `SELECT 1`.
pub struct PgHealth {
    pool: PgPool,
    schema_current: AtomicBool,
}

impl PgHealth {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            schema_current: AtomicBool::new(false),
        }
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
            if AtomicBool::load(&self.schema_current, Ordering::Relaxed) {
                diesel::sql_query("SELECT 1")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok::<_, String>(Vec::new());
            }
            let pending = pending_migrations(&mut conn)
                .await
                .map_err(|e| format!("{e:#}"))?;
            if pending.is_empty() {
                self.schema_current.store(true, Ordering::Relaxed);
            }
            Ok(pending)
        };
        match tokio::time::timeout(Duration::from_secs(3), check).await {
            Ok(Ok(pending)) if pending.is_empty() => {
                let status = self.pool.status();
                Health::up(
                    "postgres",
                    json!({
                        "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
                        "pool_size": status.size,
                        "pool_available": status.available,
                        "pool_max": status.max_size,
                        "schema": "current",
                    }),
                )
            }
            Ok(Ok(pending)) => Health::down(
                "postgres",
                json!({
                    "error": "the schema is not current: run `smap-identity migrate`",
                    "pending_migrations": pending,
                }),
            ),
            Ok(Err(e)) => Health::down("postgres", json!({ "error": e })),
            Err(_) => Health::down("postgres", json!({ "error": "no answer within 3 s" })),
        }
    }
}
