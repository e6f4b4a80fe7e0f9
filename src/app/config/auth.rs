//! The credentials callers are checked against (`JWT_SECRET`,
//! `INTERNAL_KEY`), the bound on password hashing
//! (`PASSWORD_HASH_CONCURRENCY`, `PASSWORD_HASH_MAX_WAIT_MS`), and the
//! refusal of published secrets in production (DESIGN §10).

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, Settings, env::Env};
use crate::adapters::{amqp::split_urls, argon2::HashBound};

/// Development fallbacks, so `cargo run` works with nothing set; production
/// refuses to start without real values.
pub const DEV_INTERNAL_KEY: &str = "dev-internal-key";
pub(super) const DEV_JWT_SECRET: &str = "dev-only-jwt-secret-change-me-0123456789";
/// The internal key of `Settings::for_tests`.
pub(super) const TEST_INTERNAL_KEY: &str = "test-internal-key";
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

/// The auth section of `Settings`.
pub(super) struct Auth {
    pub(super) jwt_secret: SecretString,
    pub(super) internal_key: SecretString,
    pub(super) password_hash_concurrency: usize,
    pub(super) password_hash_max_wait: std::time::Duration,
}

/// Production needs both secrets set (and long enough); development falls
/// back to the published defaults.
pub(super) fn auth<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    production: bool,
) -> Result<Auth, ConfigError> {
    let unset = |var| ConfigError {
        var,
        problem: "must be set in production".into(),
    };
    let jwt_secret = match env.get("JWT_SECRET") {
        Some(secret) if secret.len() >= MIN_SECRET_LEN => SecretString::from(secret),
        Some(_) => {
            return Err(ConfigError {
                var: "JWT_SECRET",
                problem: format!("must be at least {MIN_SECRET_LEN} characters"),
            });
        }
        None if production => return Err(unset("JWT_SECRET")),
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
        None if production => return Err(unset("INTERNAL_KEY")),
        None => SecretString::from(DEV_INTERNAL_KEY),
    };
    Ok(Auth {
        jwt_secret,
        internal_key,
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
    })
}

/// The password of `scheme://user:password@host/...`, if the URL has one.
pub(super) fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

/// The value of a secret that may be unset.
fn expose(secret: Option<&SecretString>) -> Option<&str> {
    secret.map(|s| s.expose_secret())
}

impl Settings {
    /// Production start-up fails on any secret anyone can read in this
    /// repository, naming the variable (not the value: logs are not the
    /// place for secrets, published or not).
    pub(super) fn refuse_published_secrets(&self) -> Result<(), ConfigError> {
        let amqp_urls = self
            .amqp_url
            .as_ref()
            .map(|u| split_urls(u.expose_secret()))
            .unwrap_or_default();
        let mut values = self.secret_values();
        // Every node of the list: one published password is enough.
        values.extend(amqp_urls.iter().map(|u| ("AMQP_URL", url_password(u))));
        for (var, value) in values {
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

    /// Every secret but `AMQP_URL`'s with the variable it came from; a URL
    /// gives its password.
    fn secret_values(&self) -> Vec<(&'static str, Option<&str>)> {
        let redis = self.redis.as_ref();
        let sentinel = redis.and_then(|r| r.sentinel.as_ref());
        vec![
            ("JWT_SECRET", Some(self.jwt_secret.expose_secret())),
            ("INTERNAL_KEY", Some(self.internal_key.expose_secret())),
            (
                "REDIS_PASSWORD",
                expose(redis.and_then(|r| r.password.as_ref())),
            ),
            (
                "REDIS_SENTINEL_PASSWORD",
                expose(sentinel.and_then(|s| s.password.as_ref())),
            ),
            (
                "SMTP_PASSWORD",
                expose(self.smtp.as_ref().and_then(|s| s.password.as_ref())),
            ),
            (
                "DATABASE_URL",
                expose(self.database_url.as_ref()).and_then(url_password),
            ),
        ]
    }

    /// Whether a secret fell back to its development default.
    pub fn uses_dev_secrets(&self) -> bool {
        self.jwt_secret.expose_secret() == DEV_JWT_SECRET
            || self.internal_key.expose_secret() == DEV_INTERNAL_KEY
    }
}
