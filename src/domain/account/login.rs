//! Use case: log in. Failed attempts are counted per account; after
//! `MAX_FAILED_LOGINS` in a row the account is throttled for a while.
//! Unverified accounts are refused.

use chrono::Duration;

use super::{
    AccountError, AccountService, AccountStatus, LOGIN_THROTTLE_SECONDS, MAX_FAILED_LOGINS,
    Password, User,
};
use crate::domain::email::Email;

impl AccountService {
    #[tracing::instrument(name = "account.login", skip_all)]
    pub async fn login(&self, email: &Email, password: &Password) -> Result<User, AccountError> {
        let now = self.clock.now();
        let Some(mut user) = self.store.user_by_email(email).await? else {
            // The same hash as a real check, through the same bound: when
            // hashing is saturated an unknown e-mail gets the same 503.
            self.hasher.hash(password).await?;
            return Err(AccountError::InvalidCredentials);
        };
        if let Some(until) = user.login_blocked_until
            && now < until
        {
            return Err(AccountError::LoginThrottled {
                retry_after_secs: (until - now).num_seconds().max(1),
            });
        }
        if !self.hasher.verify(password, &user.password_hash).await? {
            user.failed_logins += 1;
            if user.failed_logins >= MAX_FAILED_LOGINS {
                user.failed_logins = 0;
                user.login_blocked_until = Some(now + Duration::seconds(LOGIN_THROTTLE_SECONDS));
                tracing::warn!(user_id = %user.id, "login throttled after repeated failures");
            }
            user.updated_at = now;
            self.store.update_user(&user).await?;
            return Err(AccountError::InvalidCredentials);
        }
        if user.status != AccountStatus::Active {
            return Err(AccountError::NotVerified);
        }
        if user.failed_logins > 0 || user.login_blocked_until.is_some() {
            user.failed_logins = 0;
            user.login_blocked_until = None;
            user.updated_at = now;
            self.store.update_user(&user).await?;
        }
        tracing::info!(user_id = %user.id, "user logged in");
        Ok(user)
    }
}
