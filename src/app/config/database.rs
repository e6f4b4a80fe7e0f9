//! `DATABASE_URL`, `MIGRATE_ON_START` and `DATABASE_STATEMENT_TIMEOUT_SECS`:
//! PostgreSQL, or the in-memory stores when unset.

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, env::Env};

/// The PostgreSQL section of `Settings`.
pub(super) struct Database {
    pub(super) url: Option<SecretString>,
    pub(super) migrate_on_start: bool,
    pub(super) statement_timeout: Option<std::time::Duration>,
}

pub(super) fn database<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Database, ConfigError> {
    let url = env.get("DATABASE_URL").map(SecretString::from);
    if let Some(url) = &url
        && !(url.expose_secret().starts_with("postgres://")
            || url.expose_secret().starts_with("postgresql://"))
    {
        return Err(ConfigError {
            var: "DATABASE_URL",
            problem: "must start with postgres:// or postgresql://".into(),
        });
    }
    Ok(Database {
        url,
        migrate_on_start: env.flag("MIGRATE_ON_START", true)?,
        statement_timeout: Some(env.seconds(
            "DATABASE_STATEMENT_TIMEOUT_SECS",
            crate::adapters::postgres::DEFAULT_STATEMENT_TIMEOUT.as_secs(),
            0..=3600,
            "whole seconds 0-3600 (0: the database's own setting)",
        )?)
        .filter(|t| !t.is_zero()),
    })
}
