//! Use cases for administrators: grant the admin role, list and read users.

use super::{AccountError, AccountService, Role, User};
use crate::domain::email::Email;

impl AccountService {
    #[tracing::instrument(name = "account.grant_admin", skip_all)]
    pub async fn grant_admin(&self, email: &Email) -> Result<User, AccountError> {
        let mut user = self
            .store
            .user_by_email(email)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        user.role = Role::Admin;
        user.updated_at = self.clock.now();
        self.store.update_user(&user).await?;
        tracing::warn!(user_id = %user.id, "admin role granted");
        Ok(user)
    }

    #[tracing::instrument(name = "account.list_users", skip_all)]

    pub async fn list_users(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<User>, u64), AccountError> {
        Ok(self.store.list_users(offset, limit).await?)
    }
}
