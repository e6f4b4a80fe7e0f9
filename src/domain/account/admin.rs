//! Use cases for administrators: grant and revoke the admin role, list and
//! read users. A role change takes effect on the next request of every
//! session: requests read the role from the store, not from the token.

use super::{AccountError, AccountService, Role, User};
use crate::{domain::email_address::Email, ports::StoreError};

impl AccountService {
    #[tracing::instrument(name = "account.set_role", skip_all)]
    pub async fn set_role(&self, email: &Email, role: Role) -> Result<User, AccountError> {
        let user = match self.store.set_role(email, role, self.clock.now()).await {
            Err(StoreError::NotFound) => return Err(AccountError::UserNotFound),
            other => other?,
        };
        tracing::warn!(user_id = %user.id, role = role.as_str(), "role changed");
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
