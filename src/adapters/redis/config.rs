//! `RedisConfig`: where the Redis clients connect and as whom; filled from
//! `REDIS_*` by `app::config`, so this adapter reads no environment itself.

use secrecy::SecretString;

/// One Redis server, or a master found through Redis Sentinel.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_HOST` / `REDIS_PORT`; empty and 0 when `sentinel` is set (the
    /// sentinels name the master).
    pub host: String,
    pub port: u16,
    /// `REDIS_PASSWORD`: the data nodes' password (master and replicas).
    pub password: Option<SecretString>,
    /// `REDIS_STATE_DB` (0-15): the database of project progress; caches
    /// stay on DB 0.
    pub state_db: u8,
    /// `REDIS_SENTINELS`: find the master through Redis Sentinel and follow
    /// its failovers (issue 14); `None` is one server at `host:port`.
    pub sentinel: Option<RedisSentinel>,
}

/// Redis Sentinel: the sentinels to ask, and the master's name there.
#[derive(Debug, Clone)]
pub struct RedisSentinel {
    /// `REDIS_SENTINELS`: `host:port` of every known sentinel (never empty).
    pub sentinels: Vec<(String, u16)>,
    /// `REDIS_SENTINEL_MASTER`: the name the sentinels monitor the master as.
    pub master: String,
    /// `REDIS_SENTINEL_PASSWORD`: the sentinels' own `requirepass`; `None`
    /// sends them no AUTH (`REDIS_PASSWORD` is not tried on them).
    pub password: Option<SecretString>,
}

impl RedisConfig {
    /// Where Redis is, for logs and the start-up line (no password).
    pub fn address(&self) -> String {
        match &self.sentinel {
            None => format!("{}:{}", self.host, self.port),
            Some(s) => {
                let sentinels: Vec<String> = s
                    .sentinels
                    .iter()
                    .map(|(h, p)| format!("{h}:{p}"))
                    .collect();
                format!("sentinel master {} via {}", s.master, sentinels.join(","))
            }
        }
    }
}
