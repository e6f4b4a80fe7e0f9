//! Use cases: read and update one's profile, change one's password. A
//! profile edit writes only the fields it names; a password change is
//! conditional on the hash it checked and ends every earlier session.

use uuid::Uuid;

use super::{AccountError, AccountService, FullName, Password, Session, User};
use crate::{
    domain::locale::Locale,
    ports::{ProfileChanges, UserRef},
};

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
        let changes = ProfileChanges { full_name, locale };
        match self
            .store
            .update_profile(id, &changes, self.clock.now())
            .await
        {
            Err(crate::ports::StoreError::NotFound) => Err(AccountError::UserNotFound),
            other => Ok(other?),
        }
    }

    /// Checks `current` (inside the account's password-check limit), stores
    /// the new hash, ends every session of the user and opens a new one for
    /// the caller, which it returns.
    #[tracing::instrument(name = "account.change_password", skip_all)]
    pub async fn change_password(
        &self,
        id: Uuid,
        current: &Password,
        new: &Password,
    ) -> Result<Session, AccountError> {
        let now = self.clock.now();
        let user = match self.check_password(UserRef::Id(id), current, now).await {
            Err(AccountError::InvalidCredentials) => return Err(AccountError::WrongPassword),
            other => other?,
        };
        let hash = self.hasher.hash(new).await?;
        let session = Session::new(self.ids.new_uuid(), id, now);
        self.store
            .change_password(id, &user.password_hash, &hash, &session, now)
            .await?;
        tracing::info!(user_id = %user.id, "password changed; earlier sessions ended");
        Ok(session)
    }
}
