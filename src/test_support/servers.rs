//! The real servers `scripts/services.sh` starts, as the tests and the
//! benchmarks reach them: a PostgreSQL database of its own per run (so runs
//! on one server never see each other's rows) and the Redis settings.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::adapters::redis::RedisConfig;

/// Creates an empty database named `<prefix>_<uuid>` on the server of
/// `server_url` (any database URL there that may `CREATE DATABASE`) and
/// returns its URL: `server_url` with the database name replaced.
///
/// # Panics
/// When the server cannot be reached, refuses the `CREATE DATABASE`, or
/// `server_url` names no database (no `/`): fixtures fail loudly.
pub async fn create_database(server_url: &str, prefix: &str) -> String {
    let mut conn = AsyncPgConnection::establish(server_url)
        .await
        .expect("the test PostgreSQL is reachable");
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (base, _) = server_url
        .rsplit_once('/')
        .expect("the database URL names a database");
    format!("{base}/{name}")
}

/// The Redis of `REDIS_HOST` and `REDIS_PORT` (6379 when unset or not a
/// number), state database 1, no password, no Sentinel; `None` when
/// `REDIS_HOST` is unset or empty (callers decide whether that skips or
/// fails).
pub fn redis_from_env() -> Option<RedisConfig> {
    let host = std::env::var("REDIS_HOST").ok().filter(|h| !h.is_empty())?;
    let port = std::env::var("REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6379);
    Some(RedisConfig {
        host,
        port,
        password: None,
        state_db: 1,
        sentinel: None,
    })
}
