//! `Settings`: the 12-factor configuration (DESIGN §8), read once from the
//! environment, one section at a time (a file each: server, database, amqp,
//! redis, smtp, auth, telemetry, workers). Server sections map onto the
//! adapters' own config types (`RedisConfig`, `SmtpConfig`). A malformed
//! value stops start-up with an error naming the variable; an empty value
//! counts as unset.

mod amqp;
mod auth;
mod database;
mod env;
mod redis;
mod server;
mod smtp;
mod telemetry;
#[cfg(test)]
mod tests;
mod workers;

use std::net::IpAddr;

use secrecy::SecretString;

use self::{auth::TEST_INTERNAL_KEY, env::Env};
pub use self::{
    auth::{DEV_INTERNAL_KEY, PUBLISHED_SECRETS},
    telemetry::{LogFormat, OtelSettings, OtlpProtocol, ParentlessSampler, TraceSampler},
};
use crate::adapters::{amqp::QueueType, mail::SmtpConfig, redis::RedisConfig};
pub use crate::domain::events::EventDelivery;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
    Test,
}

impl AppEnv {
    pub fn is_production(self) -> bool {
        self == Self::Production
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    pub http_host: IpAddr,
    pub http_port: u16,
    pub database_url: Option<SecretString>,
    /// `MIGRATE_ON_START` (default true): `serve`, `all` and `consume` apply
    /// pending migrations before they start. False: they leave them to
    /// `smap-identity migrate` (the Kubernetes Job) and `/ready` answers 503
    /// until the schema is current.
    pub migrate_on_start: bool,
    /// `DATABASE_STATEMENT_TIMEOUT_SECS` (default 10; 0: not set, the
    /// database's own applies): the
    /// server cancels any statement of the service's pool running longer
    /// (decision 65); migrations run without it.
    pub database_statement_timeout: Option<std::time::Duration>,
    /// One node, or the nodes of a cluster comma-separated (walked in
    /// order on connect and reconnect).
    pub amqp_url: Option<SecretString>,
    /// `AMQP_QUEUE_TYPE`: classic (default) or quorum (a cluster).
    pub amqp_queue_type: QueueType,
    pub redis: Option<RedisConfig>,
    /// Also publish e-mail events to the legacy fanout exchange.
    #[cfg(feature = "legacy-fanout")]
    pub enable_dual_publish: bool,
    /// Also consume the legacy queue `smtp_send_email`.
    #[cfg(feature = "legacy-fanout")]
    pub consume_legacy_queue: bool,
    pub smtp: Option<SmtpConfig>,
    pub jwt_secret: SecretString,
    pub internal_key: SecretString,
    /// Browser origins allowed to call the API with credentials
    /// (`CORS_ALLOWED_ORIGINS`); none in production unless listed.
    pub cors_allowed_origins: Vec<String>,
    /// OTLP span export; `None` when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset.
    pub otel: Option<OtelSettings>,
    pub log_format: LogFormat,
    pub rust_log: String,
    /// How often ended trials and paid periods are swept.
    pub expiry_sweep_interval: std::time::Duration,
    /// `EVENT_DELIVERY`: `outbox` (the default, with or without a database)
    /// or `direct` (the seed's publish-in-the-request behaviour).
    pub event_delivery: EventDelivery,
    /// How often the completion relay looks for `job.completed` events
    /// recorded but not yet published.
    pub completion_relay_interval: std::time::Duration,
    /// E-mails handled at once by the consumers.
    pub email_concurrency: usize,
    /// Unacknowledged messages RabbitMQ hands each consumer channel.
    pub email_prefetch: u16,
    /// Argon2 hashes run at once (`PASSWORD_HASH_CONCURRENCY`; default: the
    /// cores available, after the container's CPU quota).
    pub password_hash_concurrency: usize,
    /// How long a request waits for a hashing slot before it is answered
    /// 503 with `Retry-After` (`PASSWORD_HASH_MAX_WAIT_MS`; default 2000).
    pub password_hash_max_wait: std::time::Duration,
    /// Run the e-mail consumers in this process (`all`, `consume`); the
    /// command line decides, not the environment.
    pub start_consumers: bool,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads settings through `lookup` (tests pass a map), section by
    /// section; production then refuses published secrets.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let app_env = server::app_env(&env)?;
        let production = app_env.is_production();
        let server = server::server(&env, production)?;
        let database = database::database(&env)?;
        let amqp = amqp::amqp(&env)?;
        let redis = redis::redis(&env)?;
        let smtp = smtp::smtp(&env)?;
        let auth = auth::auth(&env, production)?;
        let telemetry = telemetry::telemetry(&env, production)?;
        let workers = workers::workers(&env)?;
        let settings = Self {
            app_env,
            http_host: server.http_host,
            http_port: server.http_port,
            cors_allowed_origins: server.cors_allowed_origins,
            database_url: database.url,
            migrate_on_start: database.migrate_on_start,
            database_statement_timeout: database.statement_timeout,
            amqp_url: amqp.url,
            amqp_queue_type: amqp.queue_type,
            #[cfg(feature = "legacy-fanout")]
            enable_dual_publish: amqp.enable_dual_publish,
            #[cfg(feature = "legacy-fanout")]
            consume_legacy_queue: amqp.consume_legacy_queue,
            redis,
            smtp,
            jwt_secret: auth.jwt_secret,
            internal_key: auth.internal_key,
            password_hash_concurrency: auth.password_hash_concurrency,
            password_hash_max_wait: auth.password_hash_max_wait,
            otel: telemetry.otel,
            log_format: telemetry.log_format,
            rust_log: telemetry.rust_log,
            expiry_sweep_interval: workers.expiry_sweep_interval,
            completion_relay_interval: workers.completion_relay_interval,
            event_delivery: workers.event_delivery,
            email_concurrency: workers.email_concurrency,
            email_prefetch: workers.email_prefetch,
            start_consumers: true,
        };
        if production {
            settings.refuse_published_secrets()?;
        }
        Ok(settings)
    }

    /// Production runs on real servers: an unset server variable would
    /// select an in-memory adapter, which loses everything on restart, is
    /// not shared by replicas and (for SMTP) sends no e-mail at all. For the
    /// long-running processes (`serve`, `all`, `consume`); one-off tools
    /// (`events`, `migrate`) need only their own server.
    pub fn require_servers(&self) -> Result<(), ConfigError> {
        if !self.app_env.is_production() {
            return Ok(());
        }
        let missing = [
            ("DATABASE_URL", self.database_url.is_none()),
            ("AMQP_URL", self.amqp_url.is_none()),
            ("REDIS_HOST", self.redis.is_none()),
            ("SMTP_HOST", self.smtp.is_none()),
        ]
        .into_iter()
        .find(|(_, missing)| *missing);
        match missing {
            Some((var, _)) => Err(ConfigError {
                var,
                problem: "is required with APP_ENV=production: unset, it selects an in-memory \
                          adapter (data lost on restart, not shared by replicas, no e-mail sent)"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    /// Settings for tests: development defaults, port 0, nothing external.
    pub fn for_tests() -> Self {
        let mut settings =
            Self::from_lookup(|_| None).unwrap_or_else(|_| unreachable!("defaults are valid"));
        settings.app_env = AppEnv::Test;
        settings.http_port = 0;
        settings.internal_key = SecretString::from(TEST_INTERNAL_KEY);
        // Test binaries run many apps at once on few cores: a test that is
        // not about shedding must not get a 503 because its neighbours hash.
        settings.password_hash_max_wait = std::time::Duration::from_secs(30);
        settings
    }
}
