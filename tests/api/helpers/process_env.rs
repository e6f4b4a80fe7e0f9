//! Environments for a spawned `smap-identity` (`process::Service`,
//! `process::exit_of`): the production base the configuration tests vary,
//! and the real servers plus an SMTP sink the fleet tests share.

use std::path::PathBuf;

use smap_identity::adapters::redis::RedisConfig;

use crate::{real_smtp::Sink, servers::free_port};

/// `APP_ENV=production` with this run's secrets, and Redis and SMTP hosts
/// (Redis on port 1: nothing there); callers add what their case needs.
pub fn production_base<'a>(jwt: &'a str, key: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("APP_ENV", "production"),
        ("HTTP_HOST", "127.0.0.1"),
        ("JWT_SECRET", jwt),
        ("INTERNAL_KEY", key),
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", "1"),
        ("SMTP_HOST", "127.0.0.1"),
    ]
}

/// An aiosmtpd sink on a free port writing to a fresh maildir, and the
/// environment that points a spawned process at PostgreSQL, RabbitMQ,
/// Redis and that sink. The sink stops when this is dropped.
pub struct ServersWithSink {
    /// Where the sink writes each e-mail it accepts.
    pub maildir: PathBuf,
    vars: Vec<(&'static str, String)>,
    _sink: Sink,
}

impl ServersWithSink {
    /// `tag` names the maildir (`<tmp>/<tag>-<uuid>`).
    pub fn start(tag: &str, database_url: &str, amqp_url: &str, redis: &RedisConfig) -> Self {
        let maildir = std::env::temp_dir().join(format!("{tag}-{}", uuid::Uuid::new_v4().simple()));
        let sink_port = free_port();
        let sink =
            Sink::start(sink_port, &maildir).expect("aiosmtpd (scripts/services.sh install)");
        let vars = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("AMQP_URL", amqp_url.to_owned()),
            ("REDIS_HOST", "127.0.0.1".to_owned()),
            ("REDIS_PORT", redis.port.to_string()),
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", sink_port.to_string()),
            ("SMTP_TLS", "none".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        Self {
            maildir,
            vars,
            _sink: sink,
        }
    }

    /// One more variable (or another value for one already set).
    // Only the cluster test, which the legacy fanout build alone has, uses it.
    #[cfg_attr(not(feature = "legacy-fanout"), allow(dead_code))]
    pub fn with(mut self, var: &'static str, value: &str) -> Self {
        self.vars.retain(|(k, _)| *k != var);
        self.vars.push((var, value.to_owned()));
        self
    }

    /// The environment, as `Service::start` takes it.
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}
