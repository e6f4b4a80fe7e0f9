//! What several benchmarks share: their environment, and the fixtures the
//! tests use too (`smap_identity::test_support`, re-exported so a
//! benchmark names them in one place). (A directory module, so Cargo does
//! not take it for a benchmark of its own.)

// Each benchmark uses a part of this module.
#![allow(dead_code, unused_imports)]

pub use smap_identity::test_support::{
    amqp::{bind_queue, confirm_channel},
    events::{event_service, trial, verification},
    servers::{create_database, redis_from_env},
};

/// A variable `scripts/bench.sh` sets.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set: run scripts/bench.sh"))
}

/// The bench Redis (`REDIS_HOST`, `REDIS_PORT`).
pub fn redis() -> smap_identity::adapters::redis::RedisConfig {
    redis_from_env().expect("REDIS_HOST must be set: run scripts/bench.sh")
}

/// A fresh, migrated database of its own on the bench PostgreSQL
/// (`DATABASE_URL`): its URL and a pool of `size` connections.
pub async fn migrated_database(size: usize) -> (String, smap_identity::adapters::postgres::PgPool) {
    let url = create_database(&env("DATABASE_URL"), "bench").await;
    let pool = smap_identity::adapters::postgres::pool(&url, size).unwrap();
    smap_identity::adapters::postgres::migrate(&pool)
        .await
        .unwrap();
    (url, pool)
}
