//! One-shot commands: `migrate` and `admin grant|revoke <email>`. They need
//! `DATABASE_URL`: the in-memory store lives inside a serving process.

use secrecy::ExposeSecret;

use crate::{
    adapters::postgres::{self, PgIdentityStore},
    app::config::Settings,
    domain::{account::Role, email_address::Email},
    ports::{IdentityStore, StoreError},
};

fn database_url(settings: &Settings) -> anyhow::Result<String> {
    settings
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().to_owned())
        .ok_or_else(|| {
            anyhow::anyhow!("DATABASE_URL is not set: this command works on PostgreSQL only")
        })
}

/// Applies pending migrations; returns the versions applied.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let pool = postgres::pool_with_timeout(
        &database_url(settings)?,
        1,
        settings.database_statement_timeout,
    )?;
    postgres::migrate(&pool).await
}

/// Sets the role of the account with `email` (`admin grant` / `admin revoke`);
/// it takes effect on the next request of every session of that account.
pub async fn set_role(settings: &Settings, email: &str, role: Role) -> anyhow::Result<()> {
    let email = Email::parse(email)
        .map_err(|e| anyhow::anyhow!("`{email}` is not an e-mail address: {e}"))?;
    let pool = postgres::pool_with_timeout(
        &database_url(settings)?,
        1,
        settings.database_statement_timeout,
    )?;
    postgres::migrate(&pool).await?;
    let store = PgIdentityStore::new(pool);
    let user = match store.set_role(&email, role, chrono::Utc::now()).await {
        Err(StoreError::NotFound) => {
            anyhow::bail!("no account with the e-mail {}", email.masked())
        }
        other => other?,
    };
    tracing::warn!(user_id = %user.id, role = role.as_str(), "role changed");
    Ok(())
}
