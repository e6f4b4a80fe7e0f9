//! Redis (fred): a state pool on `REDIS_STATE_DB` for project progress and a
//! separate cache client on DB 0, with reconnection, command timeouts and a
//! bounded shutdown; one server or a master found through Redis Sentinel.

mod config;
mod dedup;
mod health;
mod progress;

use std::time::Duration;

use fred::{
    interfaces::{EventInterface, ServerInterface},
    prelude::{
        Builder, ClientLike, Config, Error as RedisError, ErrorKind, Pool, ReconnectPolicy,
        ServerConfig,
    },
    types::config::{ReconnectError, Server},
};
use secrecy::ExposeSecret;

pub use config::{RedisConfig, RedisSentinel};
pub use dedup::RedisDedup;
pub use health::RedisHealth;
pub use progress::RedisProgressStore;

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

/// How long each progress write waits for a replica (Sentinel only): on a
/// LAN a replica acknowledges in about a millisecond; WAIT blocks its
/// connection, so a lagging or absent replica must not hold it longer.
/// decisions.md 60.
pub const REPLICA_WAIT: Duration = Duration::from_millis(100);

/// The two Redis clients of the service.
#[derive(Clone)]
pub struct RedisClients {
    /// Project progress, on `REDIS_STATE_DB`.
    pub state: Pool,
    /// Caches and de-duplication keys, on DB 0.
    pub cache: Pool,
}

/// The one server, or the sentinels to ask for the master. With Sentinel,
/// fred asks a sentinel for the master on every (re)connect and checks its
/// ROLE, so a failover is followed when the old master's connection drops
/// (or answers READONLY, see `builder`): no restart (decisions.md 60).
fn server_config(settings: &RedisConfig) -> ServerConfig {
    match &settings.sentinel {
        None => ServerConfig::new_centralized(settings.host.clone(), settings.port),
        Some(sentinel) => ServerConfig::Sentinel {
            hosts: sentinel
                .sentinels
                .iter()
                .map(|(host, port)| Server::new(host.as_str(), *port))
                .collect(),
            service_name: sentinel.master.clone(),
            // Sentinels have a password of their own (fred feature
            // `sentinel-auth`): REDIS_PASSWORD stays the data nodes'.
            username: None,
            password: sentinel
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
        },
    }
}

fn builder(settings: &RedisConfig, db: u8) -> Builder {
    let config = Config {
        server: server_config(settings),
        password: settings
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned()),
        database: Some(db),
        // Start even when Redis is down: progress answers 503 until it is
        // back, and nothing else depends on it.
        fail_fast: false,
        ..Config::default()
    };
    // READONLY means a demoted master whose connection did not drop:
    // reconnecting asks the sentinels again instead of failing every write
    // there (fred feature `custom-reconnect-errors`). One server keeps the
    // behaviour it had: errors go to the caller, no reconnect (fred's
    // default list would also reconnect on LOADING).
    let reconnect_errors = match settings.sentinel {
        Some(_) => vec![ReconnectError::ReadOnly],
        None => Vec::new(),
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
            c.reconnect_errors = reconnect_errors;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = COMMAND_TIMEOUT;
        });
    builder
}

impl RedisClients {
    /// Builds both clients and starts connecting; waits a short while for the
    /// first connection but does not fail start-up when Redis is down.
    pub async fn connect(settings: &RedisConfig) -> Result<Self, RedisError> {
        let state = builder(settings, settings.state_db).build_pool(STATE_POOL_SIZE)?;
        let cache = builder(settings, 0).build_pool(1)?;
        if settings.sentinel.is_some() {
            // Which master each reconnect of one state connection found:
            // the trace of a failover in the logs. The listener task runs
            // detached and ends with the client's event channel.
            drop(state.next().on_reconnect(|server| async move {
                tracing::info!(server = %server, "Redis (state) connected to the master");
                Ok(())
            }));
        }
        state.connect();
        cache.connect();
        match tokio::time::timeout(STARTUP_WAIT, state.wait_for_connect()).await {
            Ok(Ok(())) => {
                let master = state
                    .next()
                    .sentinel_primary()
                    .map(|server| server.to_string());
                tracing::info!(
                    redis = %settings.address(),
                    master = master.as_deref().unwrap_or("-"),
                    state_db = settings.state_db,
                    "connected to Redis"
                )
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

    /// The progress store on the state pool; with Sentinel, its writes
    /// wait for a replica (`REPLICA_WAIT`).
    pub fn progress_store(&self, settings: &RedisConfig) -> RedisProgressStore {
        let store = RedisProgressStore::new(self.state.clone());
        match settings.sentinel {
            Some(_) => store.with_replica_wait(REPLICA_WAIT),
            None => store,
        }
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
