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

/// CPU time (user + system, all threads) a `/proc/<pid>/stat` line
/// reports, in clock ticks of 10 ms, with that of its children that have
/// exited (a server's postmaster collects its short-lived workers', such as
/// autovacuum's) when `children`; and the command name.
pub fn stat_cpu(stat: &str, children: bool) -> (String, std::time::Duration) {
    let comm = stat
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map_or("", |(name, _)| name)
        .to_owned();
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let exited = if children { ticks(13) + ticks(14) } else { 0 };
    (
        comm,
        std::time::Duration::from_millis((ticks(11) + ticks(12) + exited) * 10),
    )
}

/// CPU time used so far by this process, all threads.
pub fn process_cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    stat_cpu(&stat, false).1
}

/// CPU time used so far by this process (first) and by the processes of
/// each command name in `servers` (`postgres`, `beam.smp`), one entry per
/// name: the whole cost of a request on a machine where client and servers
/// share the cores, and who spent it. Only a difference of two calls means
/// anything (a process that exits between the two is lost, unless its
/// parent is counted too and collects it). Every process of those names on
/// the machine counts: run it with no other servers up.
pub fn cpu_with(servers: &[&str]) -> Vec<std::time::Duration> {
    let mut totals = vec![std::time::Duration::ZERO; servers.len() + 1];
    totals[0] = process_cpu();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
            let (comm, cpu) = stat_cpu(&stat, true);
            if let Some(i) = servers.iter().position(|s| *s == comm) {
                totals[i + 1] += cpu;
            }
        }
    }
    totals
}
