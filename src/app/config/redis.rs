//! `REDIS_*`: one server (`REDIS_HOST`) or a Sentinel-managed master
//! (`REDIS_SENTINELS`), mapped onto the adapter's `RedisConfig`; neither is
//! no Redis (progress in memory).

use secrecy::SecretString;

use super::{ConfigError, env::Env};
use crate::adapters::redis::{RedisConfig, RedisSentinel};

/// Both `REDIS_HOST` and `REDIS_SENTINELS` at once is refused rather than
/// one silently winning: an operator moving to Sentinel who left
/// `REDIS_HOST` behind would otherwise run on the old single server (or
/// the reverse) without noticing. decisions.md 59.
pub(super) fn redis<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<RedisConfig>, ConfigError> {
    let host = env.get("REDIS_HOST");
    let sentinel = sentinel(env, host.is_some())?;
    if host.is_none() && sentinel.is_none() {
        return Ok(None);
    }
    let port = match sentinel {
        Some(_) => 0,
        None => env.port("REDIS_PORT", 6379)?,
    };
    Ok(Some(RedisConfig {
        host: host.unwrap_or_default(),
        port,
        password: env.get("REDIS_PASSWORD").map(SecretString::from),
        state_db: env.parse(
            "REDIS_STATE_DB",
            1,
            |s| s.parse().ok().filter(|db| *db <= 15),
            "a database number 0-15",
        )?,
        sentinel,
    }))
}

/// `REDIS_SENTINELS` with its master's name and password; the two others
/// without it are a mistake, not something to ignore.
fn sentinel<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    host_set: bool,
) -> Result<Option<RedisSentinel>, ConfigError> {
    if env.get("REDIS_SENTINELS").is_none() {
        for var in ["REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD"] {
            if env.get(var).is_some() {
                return Err(ConfigError {
                    var,
                    problem: "is set but REDIS_SENTINELS is not; set REDIS_SENTINELS \
                              (the sentinels' host:port list) or unset it"
                        .into(),
                });
            }
        }
        return Ok(None);
    }
    if host_set {
        return Err(ConfigError {
            var: "REDIS_SENTINELS",
            problem: "and REDIS_HOST are both set; set REDIS_HOST for one Redis server \
                      or REDIS_SENTINELS (+ REDIS_SENTINEL_MASTER) for Sentinel, not both"
                .into(),
        });
    }
    let sentinels = env.parse(
        "REDIS_SENTINELS",
        Vec::new(),
        parse_sentinels,
        "comma-separated host:port pairs such as \
         `10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379` (ports 1-65535)",
    )?;
    let master = env
        .get("REDIS_SENTINEL_MASTER")
        .ok_or_else(|| ConfigError {
            var: "REDIS_SENTINEL_MASTER",
            problem: "must be set with REDIS_SENTINELS: the name the sentinels monitor \
                      the master as (`sentinel monitor <name> …`)"
                .into(),
        })?;
    Ok(Some(RedisSentinel {
        sentinels,
        master: master.trim().to_owned(),
        password: env.get("REDIS_SENTINEL_PASSWORD").map(SecretString::from),
    }))
}

/// `host:port[,host:port…]`; an IPv6 host in brackets (`[::1]:26379`).
fn parse_sentinels(raw: &str) -> Option<Vec<(String, u16)>> {
    let sentinels: Option<Vec<(String, u16)>> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (host, port) = item.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
            (!host.is_empty() && !host.contains([' ', '/', '@'])).then(|| (host.to_owned(), port))
        })
        .collect();
    sentinels.filter(|s| !s.is_empty())
}
