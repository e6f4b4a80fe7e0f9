//! `Settings`: the 12-factor configuration (DESIGN §8), read once from the
//! environment. A malformed value stops start-up with an error naming the
//! variable; an empty value counts as unset.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};

use crate::adapters::{
    amqp::{QueueType, split_urls},
    argon2::HashBound,
    mail::{SmtpConfig, SmtpTls},
    redis::{RedisConfig, RedisSentinel},
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The OTLP wire format (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc` (the default), usually port 4317.
    Grpc,
    /// `http/protobuf`, usually port 4318; spans go to `<endpoint>/v1/traces`.
    HttpProtobuf,
}

/// Where and as whom spans are exported; absent = no export.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelSettings {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://jaeger:4317`.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// `OTEL_SERVICE_NAME` (default `smap-identity`).
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs added to every span's resource.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_BSP_SCHEDULE_DELAY` (milliseconds, default 500): how long spans
    /// wait to be sent in a batch.
    pub batch_delay: std::time::Duration,
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: TraceSampler,
}

/// Which traces are recorded and exported (the OpenTelemetry sampler
/// names). Trace ids still cross every message and log line when a trace
/// is not sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampler {
    AlwaysOn,
    AlwaysOff,
    /// This fraction of new traces (0.0-1.0).
    Ratio(f64),
    /// Follow the caller's decision; new traces as the inner sampler says.
    ParentBased(ParentlessSampler),
}

/// The root sampler inside `ParentBased`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentlessSampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
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

pub use crate::domain::events::EventDelivery;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

/// Development fallbacks, so `cargo run` works with nothing set; production
/// refuses to start without real values.
pub const DEV_INTERNAL_KEY: &str = "dev-internal-key";
const DEV_JWT_SECRET: &str = "dev-only-jwt-secret-change-me-0123456789";
/// The internal key of `Settings::for_tests`.
const TEST_INTERNAL_KEY: &str = "test-internal-key";
const MIN_SECRET_LEN: usize = 32;
/// 1024 hashes at once already take 19 GiB; more is a typo, not a setting.
const MAX_HASH_CONCURRENCY: usize = 1024;
/// A minute: longer waits only hold connections past clients' timeouts.
const MAX_HASH_WAIT_MS: u64 = 60_000;

/// Every secret value this repository publishes (code defaults, the
/// docker-compose file, template.env, README and docs examples). Anyone can
/// read them, so production refuses each of them in any secret variable
/// (DESIGN §10). A unit test scans those files for secret-looking values, so
/// a new published default cannot slip past this list.
pub const PUBLISHED_SECRETS: [&str; 8] = [
    DEV_JWT_SECRET,
    DEV_INTERNAL_KEY,
    TEST_INTERNAL_KEY,
    // docker-compose.yml's defaults until issue 12 (it now reads `.env`).
    "compose-only-jwt-secret-change-me-0123456789",
    "compose-only-internal-key",
    // Passwords in the example URLs (PostgreSQL `smap:smap`, RabbitMQ
    // `guest:guest`) of template.env, docs and examples.
    "smap",
    "guest",
    // Grafana's password in docker-compose.yml.
    "admin",
];

/// `AMQP_URL`: one or more comma-separated `amqp://`/`amqps://` URLs, each
/// one parsable. The error names the item by position, never by value (it
/// holds a password).
fn check_amqp_urls(urls: &str) -> Result<(), ConfigError> {
    let items = split_urls(urls);
    if items.is_empty() {
        return Err(ConfigError {
            var: "AMQP_URL",
            problem: "lists no URL".into(),
        });
    }
    for (i, item) in items.iter().enumerate() {
        let position = i + 1;
        if !(item.starts_with("amqp://") || item.starts_with("amqps://")) {
            return Err(ConfigError {
                var: "AMQP_URL",
                problem: format!(
                    "item {position} must start with amqp:// or amqps:// \
                     (several nodes are separated by commas; a comma in a password is %2C)"
                ),
            });
        }
        if let Err(e) = item.parse::<lapin::uri::AMQPUri>() {
            // The parser may quote the URL, password included.
            let reason = if e.contains(item.as_str()) {
                "unparsable".to_owned()
            } else {
                e
            };
            return Err(ConfigError {
                var: "AMQP_URL",
                problem: format!("item {position} is not a valid AMQP URL: {reason}"),
            });
        }
    }
    Ok(())
}

/// The password of `scheme://user:password@host/...`, if the URL has one.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    fn parse<T>(
        &self,
        var: &'static str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => parse(raw.trim()).ok_or_else(|| ConfigError {
                var,
                problem: format!("is `{raw}`; expected {expected}"),
            }),
        }
    }

    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(var, default, parse_bool, "true or false")
    }

    fn port(&self, var: &'static str, default: u16) -> Result<u16, ConfigError> {
        self.parse(var, default, |s| s.parse().ok(), "a port number 0-65535")
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The web UI's development servers (Next.js, Vite).
const DEV_CORS_ORIGINS: [&str; 2] = ["http://localhost:3000", "http://localhost:5173"];

/// `scheme://host[:port]`, nothing else: a browser's `Origin` header.
fn valid_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '*', '?', '#', '@', ' '])
}

/// `OTEL_*` as the OpenTelemetry specification names them; only the endpoint
/// switches export on.
fn otel_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<OtelSettings>, ConfigError> {
    let Some(endpoint) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(ConfigError {
            var: "OTEL_EXPORTER_OTLP_ENDPOINT",
            problem: format!("is `{endpoint}`; expected an http:// or https:// URL"),
        });
    }
    let protocol = env.parse(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        OtlpProtocol::Grpc,
        |s| match s {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            _ => None,
        },
        "grpc or http/protobuf",
    )?;
    let resource_attributes = env.parse(
        "OTEL_RESOURCE_ATTRIBUTES",
        Vec::new(),
        |s| {
            s.split(',')
                .filter(|pair| !pair.trim().is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    let key = key.trim();
                    (!key.is_empty()).then(|| (key.to_owned(), value.trim().to_owned()))
                })
                .collect()
        },
        "comma-separated key=value pairs",
    )?;
    let batch_delay = std::time::Duration::from_millis(env.parse(
        "OTEL_BSP_SCHEDULE_DELAY",
        500,
        |s| s.parse().ok().filter(|ms| *ms > 0),
        "a number of milliseconds above 0",
    )?);
    let ratio = env.parse(
        "OTEL_TRACES_SAMPLER_ARG",
        1.0,
        |s| s.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)),
        "a number from 0 to 1",
    )?;
    let sampler = env.parse(
        "OTEL_TRACES_SAMPLER",
        TraceSampler::ParentBased(ParentlessSampler::AlwaysOn),
        |s| match s {
            "always_on" => Some(TraceSampler::AlwaysOn),
            "always_off" => Some(TraceSampler::AlwaysOff),
            "traceidratio" => Some(TraceSampler::Ratio(ratio)),
            "parentbased_always_on" => Some(TraceSampler::ParentBased(ParentlessSampler::AlwaysOn)),
            "parentbased_always_off" => {
                Some(TraceSampler::ParentBased(ParentlessSampler::AlwaysOff))
            }
            "parentbased_traceidratio" => {
                Some(TraceSampler::ParentBased(ParentlessSampler::Ratio(ratio)))
            }
            _ => None,
        },
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
    )?;
    Ok(Some(OtelSettings {
        endpoint,
        batch_delay,
        sampler,
        protocol,
        service_name: env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| "smap-identity".to_owned()),
        resource_attributes,
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

/// `REDIS_*`: one server (`REDIS_HOST`) or a Sentinel-managed master
/// (`REDIS_SENTINELS`); neither is no Redis. Both at once is refused rather
/// than one silently winning: an operator moving to Sentinel who left
/// `REDIS_HOST` behind would otherwise run on the old single server (or
/// the reverse) without noticing. decisions.md 59.
fn redis_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<RedisConfig>, ConfigError> {
    let host = env.get("REDIS_HOST");
    let sentinel = match env.get("REDIS_SENTINELS") {
        None => {
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
            None
        }
        Some(_) if host.is_some() => {
            return Err(ConfigError {
                var: "REDIS_SENTINELS",
                problem: "and REDIS_HOST are both set; set REDIS_HOST for one Redis server \
                          or REDIS_SENTINELS (+ REDIS_SENTINEL_MASTER) for Sentinel, not both"
                    .into(),
            });
        }
        Some(_) => {
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
            Some(RedisSentinel {
                sentinels,
                master: master.trim().to_owned(),
                password: env.get("REDIS_SENTINEL_PASSWORD").map(SecretString::from),
            })
        }
    };
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

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        let app_env = env.parse(
            "APP_ENV",
            AppEnv::Development,
            |s| match s {
                "development" | "dev" => Some(AppEnv::Development),
                "production" | "prod" => Some(AppEnv::Production),
                "test" => Some(AppEnv::Test),
                _ => None,
            },
            "development, production or test",
        )?;
        let production = app_env.is_production();
        let default_host: IpAddr = if production {
            [0, 0, 0, 0].into()
        } else {
            [127, 0, 0, 1].into()
        };
        let http_host = env.parse(
            "HTTP_HOST",
            default_host,
            |s| s.parse().ok(),
            "an IP address",
        )?;
        let http_port = env.port("HTTP_PORT", 8080)?;

        let database_url = env.get("DATABASE_URL").map(SecretString::from);
        if let Some(url) = &database_url
            && !(url.expose_secret().starts_with("postgres://")
                || url.expose_secret().starts_with("postgresql://"))
        {
            return Err(ConfigError {
                var: "DATABASE_URL",
                problem: "must start with postgres:// or postgresql://".into(),
            });
        }
        let migrate_on_start = env.flag("MIGRATE_ON_START", true)?;
        let amqp_url = env.get("AMQP_URL").map(SecretString::from);
        if let Some(url) = &amqp_url {
            check_amqp_urls(url.expose_secret())?;
        }
        let amqp_queue_type = env.parse(
            "AMQP_QUEUE_TYPE",
            QueueType::Classic,
            |s| s.parse().ok(),
            "classic or quorum",
        )?;

        let redis = redis_settings(&env)?;

        let smtp = match env.get("SMTP_HOST") {
            None => None,
            Some(host) => {
                let tls = env.parse(
                    "SMTP_TLS",
                    SmtpTls::StartTls,
                    |s| match s {
                        "none" => Some(SmtpTls::None),
                        "starttls" => Some(SmtpTls::StartTls),
                        "tls" => Some(SmtpTls::Tls),
                        _ => None,
                    },
                    "none, starttls or tls",
                )?;
                let default_port = match tls {
                    SmtpTls::None => 25,
                    SmtpTls::StartTls => 587,
                    SmtpTls::Tls => 465,
                };
                let from = env
                    .get("SMTP_FROM")
                    .unwrap_or_else(|| "SMAP <no-reply@smap.local>".into());
                if !from.contains('@') {
                    return Err(ConfigError {
                        var: "SMTP_FROM",
                        problem: format!(
                            "is `{from}`; expected an address such as `SMAP <no-reply@example.com>`"
                        ),
                    });
                }
                Some(SmtpConfig {
                    host,
                    port: env.port("SMTP_PORT", default_port)?,
                    tls,
                    username: env.get("SMTP_USERNAME"),
                    password: env.get("SMTP_PASSWORD").map(SecretString::from),
                    from,
                    timeout: std::time::Duration::from_secs(env.parse(
                        "SMTP_TIMEOUT_SECS",
                        10,
                        |s| s.parse().ok().filter(|n| (1..=300).contains(n)),
                        "a number of seconds from 1 to 300",
                    )?),
                })
            }
        };

        let jwt_secret = match env.get("JWT_SECRET") {
            Some(secret) if secret.len() >= MIN_SECRET_LEN => SecretString::from(secret),
            Some(_) => {
                return Err(ConfigError {
                    var: "JWT_SECRET",
                    problem: format!("must be at least {MIN_SECRET_LEN} characters"),
                });
            }
            None if production => {
                return Err(ConfigError {
                    var: "JWT_SECRET",
                    problem: "must be set in production".into(),
                });
            }
            None => SecretString::from(DEV_JWT_SECRET),
        };
        let internal_key = match env.get("INTERNAL_KEY") {
            Some(key) if production && key.len() < 16 => {
                return Err(ConfigError {
                    var: "INTERNAL_KEY",
                    problem: "must be at least 16 characters in production".into(),
                });
            }
            Some(key) => SecretString::from(key),
            None if production => {
                return Err(ConfigError {
                    var: "INTERNAL_KEY",
                    problem: "must be set in production".into(),
                });
            }
            None => SecretString::from(DEV_INTERNAL_KEY),
        };

        let default_origins = if production {
            Vec::new()
        } else {
            DEV_CORS_ORIGINS.iter().map(|o| (*o).to_owned()).collect()
        };
        let cors_allowed_origins = env.parse(
            "CORS_ALLOWED_ORIGINS",
            default_origins,
            |s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(|o| valid_origin(o).then(|| o.trim_end_matches('/').to_owned()))
                    .collect()
            },
            "comma-separated origins such as https://app.smap.dev (scheme and host, no path, no *)",
        )?;

        let default_format = if production {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
        let log_format = env.parse(
            "LOG_FORMAT",
            default_format,
            |s| match s {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            },
            "text or json",
        )?;

        #[cfg(not(feature = "legacy-fanout"))]
        for var in ["ENABLE_DUAL_PUBLISH", "CONSUME_LEGACY_QUEUE"] {
            if env.get(var).is_some() {
                eprintln!("smap-identity: {var} is ignored: this build has no legacy fanout path");
            }
        }

        let settings = Self {
            app_env,
            http_host,
            http_port,
            database_url,
            migrate_on_start,
            amqp_url,
            amqp_queue_type,
            redis,
            #[cfg(feature = "legacy-fanout")]
            enable_dual_publish: env.flag("ENABLE_DUAL_PUBLISH", true)?,
            #[cfg(feature = "legacy-fanout")]
            consume_legacy_queue: env.flag("CONSUME_LEGACY_QUEUE", true)?,
            smtp,
            jwt_secret,
            internal_key,
            cors_allowed_origins,
            otel: otel_settings(&env)?,
            log_format,
            rust_log: env.get("RUST_LOG").unwrap_or_else(|| "info".into()),
            expiry_sweep_interval: std::time::Duration::from_secs(env.parse(
                "EXPIRY_SWEEP_INTERVAL_SECS",
                300,
                |s| s.parse().ok().filter(|n| *n > 0),
                "a number of seconds above 0",
            )?),
            completion_relay_interval: std::time::Duration::from_secs(env.parse(
                "COMPLETION_RELAY_INTERVAL_SECS",
                5,
                |s| s.parse().ok().filter(|n| (1..=3600).contains(n)),
                "a number of seconds from 1 to 3600",
            )?),
            email_concurrency: env.parse(
                "EMAIL_CONCURRENCY",
                16,
                |s| s.parse().ok().filter(|n| (1..=1024).contains(n)),
                "a number from 1 to 1024",
            )?,
            email_prefetch: env.parse(
                "EMAIL_PREFETCH",
                32,
                |s| s.parse().ok().filter(|n| *n > 0),
                "a number from 1 to 65535",
            )?,
            password_hash_concurrency: env.parse(
                "PASSWORD_HASH_CONCURRENCY",
                HashBound::default_concurrency(),
                |s| {
                    s.parse()
                        .ok()
                        .filter(|n| (1..=MAX_HASH_CONCURRENCY).contains(n))
                },
                "a number from 1 to 1024",
            )?,
            password_hash_max_wait: std::time::Duration::from_millis(env.parse(
                "PASSWORD_HASH_MAX_WAIT_MS",
                HashBound::DEFAULT_MAX_WAIT.as_millis() as u64,
                |s| s.parse().ok().filter(|ms| *ms <= MAX_HASH_WAIT_MS),
                "a number of milliseconds from 0 to 60000",
            )?),
            event_delivery: env.parse(
                "EVENT_DELIVERY",
                EventDelivery::Outbox,
                |s| match s {
                    "outbox" => Some(EventDelivery::Outbox),
                    "direct" => Some(EventDelivery::Direct),
                    _ => None,
                },
                "outbox or direct",
            )?,
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

    /// Production start-up fails on any secret anyone can read in this
    /// repository, naming the variable (not the value: logs are not the
    /// place for secrets, published or not).
    fn refuse_published_secrets(&self) -> Result<(), ConfigError> {
        fn password(secret: Option<&SecretString>) -> Option<&str> {
            secret.map(ExposeSecret::expose_secret)
        }
        fn url(secret: &Option<SecretString>) -> Option<&str> {
            secret
                .as_ref()
                .and_then(|s| url_password(s.expose_secret()))
        }
        let amqp_urls = self
            .amqp_url
            .as_ref()
            .map(|u| split_urls(u.expose_secret()))
            .unwrap_or_default();
        let mut candidates = vec![
            ("JWT_SECRET", Some(self.jwt_secret.expose_secret())),
            ("INTERNAL_KEY", Some(self.internal_key.expose_secret())),
            (
                "REDIS_PASSWORD",
                password(self.redis.as_ref().and_then(|r| r.password.as_ref())),
            ),
            (
                "REDIS_SENTINEL_PASSWORD",
                password(
                    self.redis
                        .as_ref()
                        .and_then(|r| r.sentinel.as_ref())
                        .and_then(|s| s.password.as_ref()),
                ),
            ),
            (
                "SMTP_PASSWORD",
                password(self.smtp.as_ref().and_then(|s| s.password.as_ref())),
            ),
            ("DATABASE_URL", url(&self.database_url)),
        ];
        // Every node of the list: one published password is enough.
        candidates.extend(amqp_urls.iter().map(|u| ("AMQP_URL", url_password(u))));
        for (var, value) in candidates {
            if value.is_some_and(|v| PUBLISHED_SECRETS.contains(&v.trim())) {
                return Err(ConfigError {
                    var,
                    problem: "holds a secret published in this repository (a development \
                              default or a docker-compose, template.env or docs example); \
                              production needs one of your own, e.g. `openssl rand -hex 32`"
                        .into(),
                });
            }
        }
        Ok(())
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

    /// Whether a secret fell back to its development default.
    pub fn uses_dev_secrets(&self) -> bool {
        self.jwt_secret.expose_secret() == DEV_JWT_SECRET
            || self.internal_key.expose_secret() == DEV_INTERNAL_KEY
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|var| map.get(var).cloned())
    }

    #[test]
    fn event_delivery_defaults_to_the_outbox_and_refuses_other_values() {
        assert_eq!(settings(&[]).unwrap().event_delivery, EventDelivery::Outbox);
        assert_eq!(
            settings(&[("EVENT_DELIVERY", "direct")])
                .unwrap()
                .event_delivery,
            EventDelivery::Direct
        );
        let error = settings(&[("EVENT_DELIVERY", "sometimes")]).unwrap_err();
        assert_eq!(error.var, "EVENT_DELIVERY");
    }

    #[test]
    fn nothing_set_means_in_memory_development_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.app_env, AppEnv::Development);
        assert_eq!(
            (s.http_host.to_string().as_str(), s.http_port),
            ("127.0.0.1", 8080)
        );
        assert!(
            s.database_url.is_none()
                && s.amqp_url.is_none()
                && s.redis.is_none()
                && s.smtp.is_none()
        );
        assert!(
            s.migrate_on_start,
            "migrations run at start unless told not to"
        );
        #[cfg(feature = "legacy-fanout")]
        assert!(s.enable_dual_publish && s.consume_legacy_queue);
        assert_eq!(s.log_format, LogFormat::Text);
        assert!(s.uses_dev_secrets());
    }

    #[test]
    fn migrate_on_start_is_a_flag() {
        assert!(
            !settings(&[("MIGRATE_ON_START", "false")])
                .unwrap()
                .migrate_on_start
        );
        assert!(
            settings(&[("MIGRATE_ON_START", "TRUE")])
                .unwrap()
                .migrate_on_start
        );
        let error = settings(&[("MIGRATE_ON_START", "later")]).unwrap_err();
        assert_eq!(error.var, "MIGRATE_ON_START");
    }

    #[test]
    fn password_hashing_is_bounded_by_the_cores_and_a_short_wait_unless_set() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.password_hash_concurrency,
            HashBound::default_concurrency()
        );
        assert_eq!(
            s.password_hash_max_wait,
            std::time::Duration::from_millis(2_000)
        );
        let s = settings(&[
            ("PASSWORD_HASH_CONCURRENCY", "8"),
            ("PASSWORD_HASH_MAX_WAIT_MS", "0"),
        ])
        .unwrap();
        assert_eq!(
            (s.password_hash_concurrency, s.password_hash_max_wait),
            (8, std::time::Duration::ZERO)
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let s = settings(&[("AMQP_URL", ""), ("REDIS_HOST", "  ")]).unwrap();
        assert!(s.amqp_url.is_none() && s.redis.is_none());
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let cases = [
            ("HTTP_PORT", "eighty"),
            ("HTTP_PORT", "70000"),
            ("HTTP_HOST", "localhost:80"),
            ("APP_ENV", "staging"),
            #[cfg(feature = "legacy-fanout")]
            ("ENABLE_DUAL_PUBLISH", "maybe"),
            #[cfg(feature = "legacy-fanout")]
            ("CONSUME_LEGACY_QUEUE", "2"),
            ("DATABASE_URL", "mysql://x"),
            ("AMQP_URL", "http://rabbit"),
            ("AMQP_URL", "amqp://a:5672/%2f,rabbit-b:5672"),
            ("AMQP_URL", " , "),
            ("AMQP_QUEUE_TYPE", "mirrored"),
            ("JWT_SECRET", "short"),
            ("LOG_FORMAT", "xml"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger:4317"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("CORS_ALLOWED_ORIGINS", "https://app.smap.dev/login"),
            ("CORS_ALLOWED_ORIGINS", "app.smap.dev"),
            ("PASSWORD_HASH_CONCURRENCY", "0"),
            ("PASSWORD_HASH_CONCURRENCY", "1025"),
            ("PASSWORD_HASH_CONCURRENCY", "two"),
            ("PASSWORD_HASH_MAX_WAIT_MS", "-1"),
            ("PASSWORD_HASH_MAX_WAIT_MS", "60001"),
            ("PASSWORD_HASH_MAX_WAIT_MS", "2s"),
        ];
        for (var, value) in cases {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}: {err}");
            assert!(err.to_string().contains(var));
        }
        let err = settings(&[("REDIS_HOST", "r"), ("REDIS_STATE_DB", "16")]).unwrap_err();
        assert_eq!(err.var, "REDIS_STATE_DB");
        let err = settings(&[("SMTP_HOST", "m"), ("SMTP_TLS", "ssl")]).unwrap_err();
        assert_eq!(err.var, "SMTP_TLS");
        let otlp = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_RESOURCE_ATTRIBUTES", "region"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ] {
            assert_eq!(settings(&[otlp, (var, value)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn otlp_export_is_on_only_with_an_endpoint() {
        let off = settings(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap();
        assert!(off.otel.is_none());
        let grpc = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317/")])
            .unwrap()
            .otel
            .unwrap();
        assert_eq!(grpc.endpoint, "http://jaeger:4317");
        assert_eq!(grpc.protocol, OtlpProtocol::Grpc);
        assert_eq!(grpc.service_name, "smap-identity");
        let http = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example.com"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "identity-eu"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=staging, region = eu-1",
            ),
        ])
        .unwrap()
        .otel
        .unwrap();
        assert_eq!(http.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(http.service_name, "identity-eu");
        assert_eq!(
            grpc.sampler,
            TraceSampler::ParentBased(ParentlessSampler::AlwaysOn)
        );
        let sampled = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ])
        .unwrap()
        .otel
        .unwrap();
        assert_eq!(
            sampled.sampler,
            TraceSampler::ParentBased(ParentlessSampler::Ratio(0.1))
        );
        assert_eq!(
            http.resource_attributes,
            vec![
                ("deployment.environment.name".into(), "staging".into()),
                ("region".into(), "eu-1".into())
            ]
        );
    }

    #[test]
    fn production_requires_real_secrets_and_logs_json() {
        assert_eq!(
            settings(&[("APP_ENV", "production")]).unwrap_err().var,
            "JWT_SECRET"
        );
        let jwt = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");
        assert_eq!(
            settings(&[("APP_ENV", "production"), jwt]).unwrap_err().var,
            "INTERNAL_KEY"
        );
        let secrets = [
            ("APP_ENV", "production"),
            jwt,
            ("INTERNAL_KEY", "a-long-internal-key"),
        ];
        // Each server variable is required, named when missing.
        let servers = [
            ("DATABASE_URL", "postgres://smap@db/smap"),
            ("AMQP_URL", "amqp://mq/%2f"),
            ("REDIS_HOST", "redis"),
            ("SMTP_HOST", "mail"),
        ];
        for (i, (var, _)) in servers.iter().enumerate() {
            let mut vars = secrets.to_vec();
            vars.extend(
                servers
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, v)| *v),
            );
            let err = settings(&vars).unwrap().require_servers().unwrap_err();
            assert_eq!(err.var, *var);
            assert!(err.to_string().contains("APP_ENV=production"), "{err}");
        }
        let mut vars = secrets.to_vec();
        vars.extend(servers);
        let s = settings(&vars).unwrap();
        assert!(s.require_servers().is_ok());
        // Development keeps its in-memory adapters.
        assert!(settings(&[]).unwrap().require_servers().is_ok());
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.cors_allowed_origins.is_empty(), "no origin unless listed");
        assert_eq!(s.http_host.to_string(), "0.0.0.0");
        assert!(!s.uses_dev_secrets());
    }

    /// Production with secrets of its own and every secret variable set.
    const PRODUCTION: [(&str, &str); 9] = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c"),
        ("INTERNAL_KEY", "4b8d2f6a0c4e8a2c6e0b"),
        ("REDIS_HOST", "redis"),
        ("REDIS_PASSWORD", "7e1a5c9e3b7d1f5a"),
        ("SMTP_HOST", "mail"),
        ("SMTP_PASSWORD", "3c7e1b5d9f3a7c1e"),
        ("DATABASE_URL", "postgres://smap:5d9f3a7c1e5b@db/smap"),
        ("AMQP_URL", "amqp://smap:1e5b9d3f7a1c@mq/%2f"),
    ];

    fn production_with(var: &str, value: &str) -> Result<Settings, ConfigError> {
        let mut vars = PRODUCTION.to_vec();
        vars.retain(|(k, _)| *k != var);
        vars.push((var, value));
        settings(&vars)
    }

    #[test]
    fn production_refuses_every_published_secret_naming_the_variable() {
        // The control: the same settings with values of their own start.
        assert!(settings(&PRODUCTION).is_ok());
        let mut refused = 0;
        for secret in PUBLISHED_SECRETS {
            let cases = [
                ("JWT_SECRET", secret.to_owned()),
                ("INTERNAL_KEY", secret.to_owned()),
                ("REDIS_PASSWORD", secret.to_owned()),
                ("SMTP_PASSWORD", format!(" {secret} ")),
                ("DATABASE_URL", format!("postgres://smap:{secret}@db/smap")),
                ("AMQP_URL", format!("amqp://smap:{secret}@mq:5672/%2f")),
                // The second node of a cluster list too.
                (
                    "AMQP_URL",
                    format!(
                        "amqp://smap:0f3a9c7e5b1d@mq-0:5672/%2f,amqp://smap:{secret}@mq-1:5672/%2f"
                    ),
                ),
            ];
            for (var, value) in cases {
                let err = production_with(var, &value).unwrap_err();
                assert_eq!(err.var, var, "{var}={value}: {err}");
                // Short values may fail the length rule first; the error
                // never repeats the value.
                assert!(!err.to_string().contains(secret), "{err}");
                refused += 1;
            }
            // Development keeps accepting them: `cargo run` and the tests.
            let dev = [("INTERNAL_KEY", secret), ("REDIS_HOST", "r")];
            assert!(settings(&dev).is_ok(), "{secret}");
        }
        assert_eq!(refused, PUBLISHED_SECRETS.len() * 7);
        let compose = production_with("JWT_SECRET", "compose-only-jwt-secret-change-me-0123456789")
            .unwrap_err();
        assert!(compose.problem.contains("published"), "{compose}");
    }

    #[test]
    fn amqp_url_takes_the_nodes_of_a_cluster_and_the_queue_type() {
        let s = settings(&[
            (
                "AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5701/%2f, amqp://guest:guest@127.0.0.1:5702/%2f,",
            ),
            ("AMQP_QUEUE_TYPE", "quorum"),
        ])
        .unwrap();
        let urls = split_urls(s.amqp_url.as_ref().unwrap().expose_secret());
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[1], "amqp://guest:guest@127.0.0.1:5702/%2f");
        assert_eq!(s.amqp_queue_type, QueueType::Quorum);
        assert_eq!(settings(&[]).unwrap().amqp_queue_type, QueueType::Classic);
        // A bad item is named by position, its password never repeated.
        let err = settings(&[(
            "AMQP_URL",
            "amqp://u:0f3a9c7e5b1d@a/%2f,amqps://u:0f3a9c7e5b1d@b:99999/%2f",
        )])
        .unwrap_err();
        assert_eq!(err.var, "AMQP_URL");
        assert!(err.to_string().contains("item 2"), "{err}");
        assert!(!err.to_string().contains("0f3a9c7e5b1d"), "{err}");
    }

    #[test]
    fn url_passwords_are_read_from_the_userinfo() {
        assert_eq!(
            url_password("amqp://guest:guest@mq:5672/%2f"),
            Some("guest")
        );
        assert_eq!(url_password("postgres://u:p@ss@db/x?a=b@c"), Some("p@ss"));
        assert_eq!(url_password("postgres://postgres@127.0.0.1:5442/x"), None);
        assert_eq!(url_password("postgres://db:5432/x"), None);
    }

    /// Secret-looking literals in `text`: the value of an upper-case
    /// variable named like a secret (`NAME=value`, `NAME: value`, and the
    /// default of `${NAME:-value}` anywhere), of an `X-Internal-Key:`
    /// header, and the password of a `scheme://user:password@` URL.
    /// References (`$VAR`, `${VAR:?message}`, `$(command)`) are not literals.
    fn secret_looking_values(text: &str) -> Vec<String> {
        fn literal(raw: &str) -> Option<String> {
            let value: String = raw
                .trim_start()
                .trim_start_matches(['"', '\'', '`'])
                .chars()
                .take_while(|c| !c.is_whitespace() && !"\"'`,}".contains(*c))
                .collect();
            (!value.is_empty() && !value.starts_with(['$', '%', '<'])).then_some(value)
        }
        fn name_len(s: &str) -> usize {
            s.bytes()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
                .count()
        }
        let secret_name = |name: &str| {
            name.contains("SECRET")
                // `PASSWORD_HASH_*` tune the hasher: numbers, not secrets.
                || (name.contains("PASSWORD") && !name.starts_with("PASSWORD_HASH_"))
                || name.ends_with("_PASS")
                || name.ends_with("_KEY")
                || name.ends_with("TOKEN")
        };
        let mut found = Vec::new();
        for line in text.lines() {
            let mut i = 0;
            while i < line.len() {
                let len = name_len(&line[i..]);
                if len == 0 {
                    i += line[i..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
                let (name, rest) = line[i..].split_at(len);
                let value = rest.strip_prefix('=').or_else(|| rest.strip_prefix(": "));
                if let Some(value) = value.filter(|v| secret_name(name) && !v.starts_with("${")) {
                    found.extend(literal(value));
                }
                i += len;
            }
            for (at, _) in line.match_indices("${") {
                let inner = &line[at + 2..];
                let (name, rest) = inner.split_at(name_len(inner));
                let default = rest.strip_prefix(":-").or_else(|| rest.strip_prefix('-'));
                if let Some(default) = default.filter(|_| secret_name(name)) {
                    found.extend(literal(default));
                }
            }
            let lower = line.to_ascii_lowercase();
            for (at, _) in lower.match_indices("x-internal-key:") {
                found.extend(literal(&line[at + "x-internal-key:".len()..]));
            }
            for (at, _) in line.match_indices("://") {
                let authority: String = line[at + 3..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !"/\"'`)".contains(*c))
                    .collect();
                if let Some((userinfo, _)) = authority.rsplit_once('@')
                    && let Some((_, password)) = userinfo.split_once(':')
                {
                    found.extend(literal(password));
                }
            }
        }
        found
    }

    #[test]
    fn the_scanner_finds_secret_looking_values() {
        let text = "JWT_SECRET=abc\n  GF_SECURITY_ADMIN_PASSWORD: admin\n\
                    KEY='X-Internal-Key: k1'\nX: ${INTERNAL_KEY:-d1}\n\
                    see postgres://u:p1@db/x and `amqp://guest:g2@mq`\n\
                    JWT_SECRET: ${JWT_SECRET:?create .env}\nINTERNAL_KEY=\n\
                    db://u:${DB_PASSWORD:-d2}@h -a \"$REDIS_PASSWORD\" \
                    `JWT_SECRET`/`INTERNAL_KEY` for v in JWT_SECRET; do echo \"$v=$(openssl)\"\n\
                    PASSWORD_HASH_MAX_WAIT_MS=2000";
        assert_eq!(
            secret_looking_values(text),
            ["abc", "admin", "k1", "d1", "p1", "g2", "d2"]
        );
    }

    /// The files users copy from; each secret-looking value in them must be
    /// one production refuses.
    #[test]
    fn every_secret_published_in_the_repository_is_refused_in_production() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![
            root.join("docker-compose.yml"),
            root.join("template.env"),
            root.join("README.md"),
            root.join("Dockerfile"),
        ];
        let mut dirs = vec![
            root.join("deploy"),
            root.join("docs"),
            root.join("examples"),
            root.join("scripts"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let (mut seen, mut scanned, mut values) = (std::collections::BTreeSet::new(), 0, 0);
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            scanned += 1;
            for value in secret_looking_values(&text) {
                values += 1;
                assert!(
                    PUBLISHED_SECRETS.contains(&value.as_str()),
                    "{}: `{value}` looks like a secret; add it to PUBLISHED_SECRETS \
                     (production must refuse it) or stop publishing it",
                    file.display()
                );
                seen.insert(value);
            }
        }
        eprintln!("scanned {scanned} files: {values} secret-looking values, distinct {seen:?}");
        // The scan reads what it should: the README's development key and
        // the example URLs' passwords.
        for expected in [DEV_INTERNAL_KEY, "guest", "smap", "admin"] {
            assert!(seen.contains(expected), "{expected} not found: {seen:?}");
        }
    }

    #[test]
    fn redis_and_smtp_defaults_follow_their_host() {
        let s = settings(&[
            ("REDIS_HOST", "redis"),
            ("SMTP_HOST", "mail"),
            ("SMTP_TLS", "none"),
        ])
        .unwrap();
        let redis = s.redis.unwrap();
        assert_eq!((redis.port, redis.state_db), (6379, 1));
        let smtp = s.smtp.unwrap();
        assert_eq!((smtp.port, smtp.tls), (25, SmtpTls::None));
        assert_eq!(smtp.timeout, std::time::Duration::from_secs(10));
    }

    const SENTINELS: (&str, &str) = (
        "REDIS_SENTINELS",
        " 10.0.0.1:26379, sentinel-b:26380 ,[::1]:26381,",
    );

    #[test]
    fn redis_sentinel_reads_the_sentinels_the_master_and_its_own_password() {
        let s = settings(&[
            SENTINELS,
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_SENTINEL_PASSWORD", "5b1d9f3a7c5e"),
            ("REDIS_PASSWORD", "9a3c7e1b5d"),
            ("REDIS_STATE_DB", "3"),
            ("REDIS_PORT", "6380"),
        ])
        .unwrap();
        let redis = s.redis.unwrap();
        let sentinel = redis.sentinel.clone().unwrap();
        assert_eq!(
            sentinel.sentinels,
            [
                ("10.0.0.1".to_owned(), 26379),
                ("sentinel-b".to_owned(), 26380),
                ("::1".to_owned(), 26381)
            ]
        );
        assert_eq!(sentinel.master, "mymaster");
        assert_eq!(sentinel.password.unwrap().expose_secret(), "5b1d9f3a7c5e");
        // The data nodes keep REDIS_PASSWORD and the database.
        assert_eq!(
            redis.password.as_ref().unwrap().expose_secret(),
            "9a3c7e1b5d"
        );
        assert_eq!(redis.state_db, 3);
        assert_eq!(
            redis.address(),
            "sentinel master mymaster via 10.0.0.1:26379,sentinel-b:26380,::1:26381"
        );
        let plain = settings(&[SENTINELS, ("REDIS_SENTINEL_MASTER", "m")]).unwrap();
        assert!(plain.redis.unwrap().sentinel.unwrap().password.is_none());
        let single = settings(&[("REDIS_HOST", "redis")]).unwrap().redis.unwrap();
        assert!(single.sentinel.is_none());
        assert_eq!(single.address(), "redis:6379");
    }

    #[test]
    fn redis_sentinel_errors_name_the_variable() {
        let master = ("REDIS_SENTINEL_MASTER", "smap");
        let cases: [(&[(&str, &str)], &str); 9] = [
            (&[SENTINELS], "REDIS_SENTINEL_MASTER"),
            (
                &[SENTINELS, master, ("REDIS_HOST", "redis")],
                "REDIS_SENTINELS",
            ),
            (
                &[("REDIS_SENTINELS", "10.0.0.1"), master],
                "REDIS_SENTINELS",
            ),
            (
                &[("REDIS_SENTINELS", "10.0.0.1:0"), master],
                "REDIS_SENTINELS",
            ),
            (&[("REDIS_SENTINELS", "h:65536"), master], "REDIS_SENTINELS"),
            (&[("REDIS_SENTINELS", ":26379"), master], "REDIS_SENTINELS"),
            (&[("REDIS_SENTINELS", " , "), master], "REDIS_SENTINELS"),
            (&[master], "REDIS_SENTINEL_MASTER"),
            (
                &[("REDIS_HOST", "r"), ("REDIS_SENTINEL_PASSWORD", "x")],
                "REDIS_SENTINEL_PASSWORD",
            ),
        ];
        for (vars, var) in cases {
            let err = settings(vars).unwrap_err();
            assert_eq!(err.var, var, "{vars:?}: {err}");
            assert!(err.to_string().contains(var), "{err}");
        }
        let both = settings(&[SENTINELS, master, ("REDIS_HOST", "redis")]).unwrap_err();
        assert!(both.to_string().contains("REDIS_HOST"), "{both}");
        let bad = settings(&[SENTINELS, master, ("REDIS_STATE_DB", "16")]).unwrap_err();
        assert_eq!(bad.var, "REDIS_STATE_DB");
    }

    #[test]
    fn production_refuses_a_published_sentinel_password() {
        let mut vars: Vec<(&str, &str)> = PRODUCTION
            .iter()
            .copied()
            .filter(|(k, _)| *k != "REDIS_HOST")
            .collect();
        vars.extend([SENTINELS, ("REDIS_SENTINEL_MASTER", "smap")]);
        vars.push(("REDIS_SENTINEL_PASSWORD", "2d6f0b4e8c2a"));
        assert!(settings(&vars).is_ok());
        for secret in PUBLISHED_SECRETS {
            vars.pop();
            vars.push(("REDIS_SENTINEL_PASSWORD", secret));
            let err = settings(&vars).unwrap_err();
            assert_eq!(err.var, "REDIS_SENTINEL_PASSWORD", "{err}");
            assert!(!err.to_string().contains(secret), "{err}");
        }
    }

    #[test]
    fn the_smtp_timeout_is_bounded() {
        let mail = |t: &str| settings(&[("SMTP_HOST", "mail"), ("SMTP_TIMEOUT_SECS", t)]);
        let three = mail("3").unwrap().smtp.unwrap().timeout;
        assert_eq!(three, std::time::Duration::from_secs(3));
        for bad in ["0", "301", "ten"] {
            assert_eq!(mail(bad).unwrap_err().var, "SMTP_TIMEOUT_SECS", "{bad}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = settings(&[("JWT_SECRET", "super-secret-value-0123456789abcdef")]).unwrap();
        assert!(!format!("{s:?}").contains("super-secret"));
    }
}
