//! Use case: log in, and the password check every use case that takes a
//! password shares (login, OTP re-send, password change). The check first
//! takes its slot in the store — at most `MAX_FAILED_LOGINS` checks per
//! account, then none for `LOGIN_THROTTLE_SECONDS` — so simultaneous
//! guesses on any number of replicas cannot run more checks than that.
//! Unverified accounts are refused after a right password.

use chrono::{DateTime, Duration, Utc};

use super::{
    AccountError, AccountService, AccountStatus, LOGIN_THROTTLE_SECONDS, MAX_FAILED_LOGINS,
    Password, Session, User,
};
use crate::{
    domain::email_address::Email,
    ports::{PasswordLimit, PasswordSlot, StoreError, UserRef},
};

/// The per-account password-check limit (DESIGN §10).
pub const PASSWORD_LIMIT: PasswordLimit = PasswordLimit {
    max_checks: MAX_FAILED_LOGINS,
    lock_for: Duration::seconds(LOGIN_THROTTLE_SECONDS),
};

impl AccountService {
    /// Checks `password` against the account `who`, inside the account's
    /// limit. A right password clears the count; a wrong one keeps it.
    pub(super) async fn check_password(
        &self,
        who: UserRef<'_>,
        password: &Password,
        now: DateTime<Utc>,
    ) -> Result<User, AccountError> {
        match self
            .store
            .take_password_slot(who, now, PASSWORD_LIMIT)
            .await?
        {
            PasswordSlot::NoUser => {
                // Same work as a real check, so timing does not tell who
                // exists; and the same bound, so a saturated hasher answers
                // 503 alike.
                self.hasher.hash(password).await?;
                Err(AccountError::InvalidCredentials)
            }
            PasswordSlot::Locked { until } => Err(AccountError::LoginThrottled {
                retry_after_secs: (until - now).num_seconds().max(1),
            }),
            PasswordSlot::Granted(user) => {
                let verified = match self.hasher.verify(password, &user.password_hash).await {
                    Ok(verified) => verified,
                    Err(error) => {
                        // No check ran (shed under load): the slot is given
                        // back, so an owner retrying a 503 is not locked out.
                        self.store
                            .release_password_slot(user.id, user.failed_logins, PASSWORD_LIMIT)
                            .await?;
                        return Err(error.into());
                    }
                };
                if verified {
                    // The slot counted this check as a failure until now;
                    // checks others took meanwhile keep their count.
                    self.store
                        .clear_password_failures(user.id, user.failed_logins)
                        .await?;
                    return Ok(user);
                }
                if user.login_blocked_until.is_some_and(|until| until > now) {
                    tracing::warn!(user_id = %user.id, "password checks locked after repeated failures");
                }
                Err(AccountError::InvalidCredentials)
            }
        }
    }

    /// Opens a session for the right password of a verified account.
    #[tracing::instrument(name = "account.login", skip_all)]
    pub async fn login(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<(User, Session), AccountError> {
        let now = self.clock.now();
        let user = self
            .check_password(UserRef::Email(email), password, now)
            .await?;
        if user.status != AccountStatus::Active {
            return Err(AccountError::NotVerified);
        }
        let session = Session::new(self.ids.new_uuid(), user.id, now);
        match self
            .store
            .insert_session(&session, &user.password_hash)
            .await
        {
            // The password changed while it was checked: it is no longer
            // the password, and the change ended every session.
            Err(StoreError::Conflict) => return Err(AccountError::InvalidCredentials),
            other => other?,
        }
        tracing::info!(user_id = %user.id, "user logged in");
        Ok((user, session))
    }

    /// The user of an open session; `SessionEnded` after logout, a password
    /// change or expiry. One indexed read.
    pub async fn session_user(&self, session: uuid::Uuid) -> Result<User, AccountError> {
        self.store
            .session_user(session, self.clock.now())
            .await?
            .ok_or(AccountError::SessionEnded)
    }

    /// Ends a session: its token is refused from now on, on every replica.
    /// Ending an ended session is not an error (a retried logout).
    #[tracing::instrument(name = "account.logout", skip_all)]
    pub async fn logout(&self, session: uuid::Uuid) -> Result<(), AccountError> {
        self.store.delete_session(session).await?;
        Ok(())
    }
}
