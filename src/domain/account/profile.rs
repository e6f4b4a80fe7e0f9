//! Use cases: read and update one's profile, change one's password. A
//! profile edit writes only the fields it names; a password change is
//! conditional on the hash it checked and ends every earlier session.

use uuid::Uuid;

use super::{AccountService, FullName, Password, Session, User, login::PasswordRefused};
use crate::{
    domain::locale::Locale,
    ports::{HashError, ProfileChanges, StoreError, UserRef},
};

/// Why a use case that names one user (read, profile edit, role change)
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No account has the id (or e-mail) given.
    #[error("no such user")]
    UserNotFound,
    /// The identity store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the password was not changed; in every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// `current` is not the account's password (or the account is gone).
    #[error("the current password is wrong")]
    WrongPassword,
    /// The account used up its password checks (shared with login); none
    /// runs until the lock ends.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    LoginThrottled {
        /// Seconds until the account takes password checks again; `>= 1`.
        retry_after_secs: i64,
    },
    /// A concurrent change replaced the password after it was checked.
    #[error("the account was changed by a concurrent request; read it again and retry")]
    Conflict,
    /// The password hasher is saturated (`Busy`) or failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The identity store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ChangePasswordError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => ChangePasswordError::Conflict,
            other => ChangePasswordError::Store(other),
        }
    }
}

impl From<PasswordRefused> for ChangePasswordError {
    fn from(refused: PasswordRefused) -> Self {
        match refused {
            PasswordRefused::Wrong => ChangePasswordError::WrongPassword,
            PasswordRefused::Throttled(retry_after_secs) => {
                ChangePasswordError::LoginThrottled { retry_after_secs }
            }
            PasswordRefused::Hash(e) => ChangePasswordError::Hash(e),
            PasswordRefused::Store(e) => ChangePasswordError::from(e),
        }
    }
}

impl AccountService {
    /// The account with `id`, as stored now.
    ///
    /// # Errors
    ///
    /// [`UserError::UserNotFound`] when there is none,
    /// [`UserError::Store`] when the store fails.
    pub async fn user(&self, id: Uuid) -> Result<User, UserError> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or(UserError::UserNotFound)
    }

    /// Writes the profile fields given (`None` leaves a field as stored)
    /// and returns the account as it now is.
    ///
    /// # Errors
    ///
    /// [`UserError::UserNotFound`] when the account is gone,
    /// [`UserError::Store`] when the store fails.
    #[tracing::instrument(name = "account.update_profile", skip_all)]
    pub async fn update_profile(
        &self,
        id: Uuid,
        full_name: Option<FullName>,
        locale: Option<Locale>,
    ) -> Result<User, UserError> {
        let changes = ProfileChanges { full_name, locale };
        match self
            .store
            .update_profile(id, &changes, self.clock.now())
            .await
        {
            Err(StoreError::NotFound) => Err(UserError::UserNotFound),
            other => Ok(other?),
        }
    }

    /// Checks `current` (inside the account's password-check limit), stores
    /// the new hash, ends every session of the user and opens a new one for
    /// the caller, which it returns.
    ///
    /// # Errors
    ///
    /// [`ChangePasswordError::WrongPassword`],
    /// [`ChangePasswordError::LoginThrottled`] from the check,
    /// [`ChangePasswordError::Conflict`] when a concurrent change won,
    /// [`ChangePasswordError::Hash`] and [`ChangePasswordError::Store`]
    /// when a port fails.
    #[tracing::instrument(name = "account.change_password", skip_all)]
    pub async fn change_password(
        &self,
        id: Uuid,
        current: &Password,
        new: &Password,
    ) -> Result<Session, ChangePasswordError> {
        let now = self.clock.now();
        let user = self.check_password(UserRef::Id(id), current, now).await?;
        let hash = self.hasher.hash(new).await?;
        let session = Session::new(self.ids.new_uuid(), id, now);
        self.store
            .change_password(id, &user.password_hash, &hash, &session, now)
            .await?;
        tracing::info!(user_id = %user.id, "password changed; earlier sessions ended");
        Ok(session)
    }
}
