//! Use cases for administrators: grant and revoke the admin role, list and
//! read users. A role change takes effect on the next request of every
//! session: requests read the role from the store, not from the token.

use super::{AccountService, Role, User, UserError};
use crate::{domain::email_address::Email, ports::StoreError};

impl AccountService {
    /// Gives the account with `email` the `role` and returns it as changed.
    ///
    /// # Errors
    ///
    /// [`UserError::UserNotFound`] when no account has the e-mail,
    /// [`UserError::Store`] when the store fails.
    #[tracing::instrument(name = "account.set_role", skip_all)]
    pub async fn set_role(&self, email: &Email, role: Role) -> Result<User, UserError> {
        let user = match self.store.set_role(email, role, self.clock.now()).await {
            Err(StoreError::NotFound) => return Err(UserError::UserNotFound),
            other => other?,
        };
        tracing::warn!(user_id = %user.id, role = role.as_str(), "role changed");
        Ok(user)
    }

    /// One page of accounts, newest first (at most `limit`, skipping the
    /// `offset` newest), and the total number of accounts; an offset past
    /// the end gives an empty page.
    ///
    /// # Errors
    ///
    /// The store's error when it fails.
    #[tracing::instrument(name = "account.list_users", skip_all)]
    pub async fn list_users(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<User>, u64), StoreError> {
        self.store.list_users(offset, limit).await
    }
}
