//! Use cases: read and update one's profile, change one's password.

use uuid::Uuid;

use super::{AccountError, AccountService, FullName, Password, User};
use crate::domain::locale::Locale;

impl AccountService {
    pub async fn user(&self, id: Uuid) -> Result<User, AccountError> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or(AccountError::UserNotFound)
    }

    #[tracing::instrument(name = "account.update_profile", skip_all)]

    pub async fn update_profile(
        &self,
        id: Uuid,
        full_name: Option<FullName>,
        locale: Option<Locale>,
    ) -> Result<User, AccountError> {
        let mut user = self.user(id).await?;
        if let Some(name) = full_name {
            user.full_name = Some(name);
        }
        if let Some(locale) = locale {
            user.locale = locale;
        }
        user.updated_at = self.clock.now();
        self.store.update_user(&user).await?;
        Ok(user)
    }

    #[tracing::instrument(name = "account.change_password", skip_all)]

    pub async fn change_password(
        &self,
        id: Uuid,
        current: &Password,
        new: &Password,
    ) -> Result<(), AccountError> {
        let mut user = self.user(id).await?;
        if !self.hasher.verify(current, &user.password_hash).await? {
            return Err(AccountError::WrongPassword);
        }
        user.password_hash = self.hasher.hash(new).await?;
        user.updated_at = self.clock.now();
        self.store.update_user(&user).await?;
        tracing::info!(user_id = %user.id, "password changed");
        Ok(())
    }
}
