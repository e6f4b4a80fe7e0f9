//! Redis (fred): a state pool on `REDIS_STATE_DB` for project progress and a
//! separate cache client on DB 0, with reconnection, command timeouts and a
//! bounded shutdown.

mod dedup;
mod health;
mod progress;

use std::time::Duration;

use fred::prelude::{
    Builder, ClientLike, Config, Error as RedisError, ErrorKind, Pool, ReconnectPolicy,
    ServerConfig,
};

pub use dedup::RedisDedup;
pub use health::RedisHealth;
pub use progress::RedisProgressStore;

use crate::app::config::RedisSettings;

/// Connections in the state pool.
const STATE_POOL_SIZE: usize = 8;
/// A command that gets no answer in this time fails (and may be retried).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long start-up waits for Redis before going on without it.
const STARTUP_WAIT: Duration = Duration::from_secs(5);
/// Bound on the clean shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection backoff, first and longest wait (ms).
const RECONNECT_MIN_MS: u32 = 100;
const RECONNECT_MAX_MS: u32 = 2_000;
/// Each command is written to a connection once: fred 10 otherwise (default
/// 3) writes a command again after a reconnect when the connection closed
/// before its reply — a replay that the caller never sees nor bounds. Such a
/// replay turned a lost reply into a double count at the finish line (issue
/// 13). A command whose reply is lost fails instead (IO error), and the caller's
/// own retry — bounded, logged, with backoff (DESIGN §5) — sends it again;
/// every progress script is safe to run twice for one call (call tokens,
/// the completion record). decisions.md 50.
pub const MAX_COMMAND_ATTEMPTS: u32 = 1;

/// The two Redis clients of the service.
#[derive(Clone)]
pub struct RedisClients {
    /// Project progress, on `REDIS_STATE_DB`.
    pub state: Pool,
    /// Caches and de-duplication keys, on DB 0.
    pub cache: Pool,
}

fn builder(settings: &RedisSettings, db: u8) -> Builder {
    let config = Config {
        server: ServerConfig::new_centralized(settings.host.clone(), settings.port),
        password: settings.password.as_ref().map(|p| p.expose().to_owned()),
        database: Some(db),
        // Start even when Redis is down: progress answers 503 until it is
        // back, and nothing else depends on it.
        fail_fast: false,
        ..Config::default()
    };
    let mut builder = Builder::from_config(config);
    builder
        // Reconnect for ever, 100 ms doubling to 2 s: while disconnected the
        // stores fail each try at once (decisions.md 33), so this only
        // decides how soon Redis is used again once it is back.
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            RECONNECT_MIN_MS,
            RECONNECT_MAX_MS,
            2,
        ))
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            c.max_command_attempts = MAX_COMMAND_ATTEMPTS;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = COMMAND_TIMEOUT;
        });
    builder
}

impl RedisClients {
    /// Builds both clients and starts connecting; waits a short while for the
    /// first connection but does not fail start-up when Redis is down.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, RedisError> {
        let state = builder(settings, settings.state_db).build_pool(STATE_POOL_SIZE)?;
        let cache = builder(settings, 0).build_pool(1)?;
        state.connect();
        cache.connect();
        match tokio::time::timeout(STARTUP_WAIT, state.wait_for_connect()).await {
            Ok(Ok(())) => {
                tracing::info!(host = %settings.host, port = settings.port, state_db = settings.state_db, "connected to Redis")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis not reachable yet; reconnecting in the background")
            }
            Err(_) => tracing::warn!(
                "Redis not reachable within {STARTUP_WAIT:?}; reconnecting in the background"
            ),
        }
        Ok(Self { state, cache })
    }

    /// Closes both clients, giving up after 5 s.
    pub async fn shutdown(&self) {
        let quit = async {
            let _ = tokio::join!(self.state.quit(), self.cache.quit());
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, quit).await.is_err() {
            tracing::warn!("Redis clients did not close within {SHUTDOWN_TIMEOUT:?}");
        }
    }
}

/// Errors that another try may cure: the connection, not the request.
pub(crate) fn is_transient(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled | ErrorKind::Backpressure
    ) || error.details().starts_with("LOADING")
        || error.details().starts_with("BUSY")
}
