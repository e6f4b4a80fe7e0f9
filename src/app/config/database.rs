//! `DATABASE_URL` and `MIGRATE_ON_START`: PostgreSQL, or the in-memory
//! stores when unset.

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, env::Env};

/// The PostgreSQL section of `Settings`.
pub(super) struct Database {
    pub(super) url: Option<SecretString>,
    pub(super) migrate_on_start: bool,
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
    })
}
