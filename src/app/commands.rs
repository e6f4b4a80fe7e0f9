//! One-shot commands: `migrate` and `admin grant <email>`. Both need
//! `DATABASE_URL`: the in-memory store lives inside a serving process.

use crate::{
    adapters::postgres::{self, PgIdentityStore},
    app::config::Settings,
    domain::{account::Role, email::Email},
    ports::IdentityStore,
};

fn database_url(settings: &Settings) -> anyhow::Result<String> {
    settings
        .database_url
        .as_ref()
        .map(|u| u.expose().to_owned())
        .ok_or_else(|| {
            anyhow::anyhow!("DATABASE_URL is not set: this command works on PostgreSQL only")
        })
}

/// Applies pending migrations; returns the versions applied.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let pool = postgres::pool(&database_url(settings)?, 1)?;
    postgres::migrate(&pool).await
}

/// Makes the account with `email` an administrator.
pub async fn grant_admin(settings: &Settings, email: &str) -> anyhow::Result<()> {
    let email = Email::parse(email)
        .map_err(|e| anyhow::anyhow!("`{email}` is not an e-mail address: {e}"))?;
    let pool = postgres::pool(&database_url(settings)?, 1)?;
    postgres::migrate(&pool).await?;
    let store = PgIdentityStore::new(pool);
    let mut user = store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account with the e-mail {}", email.masked()))?;
    user.role = Role::Admin;
    user.updated_at = chrono::Utc::now();
    store.update_user(&user).await?;
    tracing::warn!(user_id = %user.id, "admin role granted");
    Ok(())
}
