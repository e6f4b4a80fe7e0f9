//! Use case: log in, and the password check every use case that takes a
//! password shares (login, OTP re-send, password change). The check first
//! takes its slot in the store — at most `MAX_FAILED_LOGINS` checks per
//! account, then none for `LOGIN_THROTTLE_SECONDS` — so simultaneous
//! guesses on any number of replicas cannot run more checks than that.
//! Unverified accounts are refused after a right password.

use chrono::{DateTime, Duration, Utc};

use super::{
    AccountService, AccountStatus, LOGIN_THROTTLE_SECONDS, MAX_FAILED_LOGINS, Password, Session,
    User,
};
use crate::{
    domain::email_address::Email,
    ports::{HashError, PasswordLimit, PasswordSlot, StoreError, UserRef},
};

/// Why a login opened no session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No account has this e-mail, or the password is not its password
    /// (the two are not told apart, so the answer does not reveal who has
    /// an account); also when the password changed while it was checked.
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    /// The account used up its password checks
    /// ([`MAX_FAILED_LOGINS`](super::MAX_FAILED_LOGINS)); none runs until
    /// the lock ends, in `retry_after_secs` seconds (at least 1).
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    LoginThrottled {
        /// Seconds until the account takes password checks again; `>= 1`.
        retry_after_secs: i64,
    },
    /// The password is right but the e-mail OTP was never confirmed.
    #[error("the account is not verified yet: verify the OTP sent by e-mail first")]
    NotVerified,
    /// The password hasher is saturated (`Busy`: the check did not run and
    /// did not count) or failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The identity store failed; no session was opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a session names no user.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session was ended (logout, password change) or expired.
    #[error("the session has ended: sign in again")]
    SessionEnded,
    /// The identity store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a password check let nobody in; each use case that checks a
/// password turns it into its own error.
#[derive(Debug)]
pub(super) enum PasswordRefused {
    /// No such account, or not its password.
    Wrong,
    /// The account's checks are locked for this many seconds (`>= 1`).
    Throttled(i64),
    Hash(HashError),
    Store(StoreError),
}

impl From<StoreError> for PasswordRefused {
    fn from(error: StoreError) -> Self {
        PasswordRefused::Store(error)
    }
}

impl From<HashError> for PasswordRefused {
    fn from(error: HashError) -> Self {
        PasswordRefused::Hash(error)
    }
}

impl From<PasswordRefused> for LoginError {
    fn from(refused: PasswordRefused) -> Self {
        match refused {
            PasswordRefused::Wrong => LoginError::InvalidCredentials,
            PasswordRefused::Throttled(retry_after_secs) => {
                LoginError::LoginThrottled { retry_after_secs }
            }
            PasswordRefused::Hash(e) => LoginError::Hash(e),
            PasswordRefused::Store(e) => LoginError::Store(e),
        }
    }
}

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
    ) -> Result<User, PasswordRefused> {
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
                Err(PasswordRefused::Wrong)
            }
            PasswordSlot::Locked { until } => Err(PasswordRefused::Throttled(
                (until - now).num_seconds().max(1),
            )),
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
                Err(PasswordRefused::Wrong)
            }
        }
    }

    /// Opens a session for the right password of a verified account and
    /// returns the account with it; the session lasts
    /// [`SESSION_TTL_HOURS`](super::SESSION_TTL_HOURS).
    ///
    /// # Errors
    ///
    /// [`LoginError::InvalidCredentials`] for an unknown e-mail or a wrong
    /// password, [`LoginError::LoginThrottled`] once the account's checks
    /// are used up, [`LoginError::NotVerified`] for an unverified account,
    /// [`LoginError::Hash`] and [`LoginError::Store`] when a port fails.
    #[tracing::instrument(name = "account.login", skip_all)]
    pub async fn login(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<(User, Session), LoginError> {
        let now = self.clock.now();
        let user = self
            .check_password(UserRef::Email(email), password, now)
            .await?;
        if user.status != AccountStatus::Active {
            return Err(LoginError::NotVerified);
        }
        let session = Session::new(self.ids.new_uuid(), user.id, now);
        match self
            .store
            .insert_session(&session, &user.password_hash)
            .await
        {
            // The password changed while it was checked: it is no longer
            // the password, and the change ended every session.
            Err(StoreError::Conflict) => return Err(LoginError::InvalidCredentials),
            other => other?,
        }
        tracing::info!(user_id = %user.id, "user logged in");
        Ok((user, session))
    }

    /// The user of an open session, as stored now (so a role change shows
    /// at once). One indexed read.
    ///
    /// # Errors
    ///
    /// [`SessionError::SessionEnded`] after logout, a password change or
    /// expiry; [`SessionError::Store`] when the store fails.
    pub async fn session_user(&self, session: uuid::Uuid) -> Result<User, SessionError> {
        self.store
            .session_user(session, self.clock.now())
            .await?
            .ok_or(SessionError::SessionEnded)
    }

    /// Ends a session: its token is refused from now on, on every replica.
    /// Ending an ended session is not an error (a retried logout).
    ///
    /// # Errors
    ///
    /// The store's error when it fails (`Unavailable` when unreachable).
    #[tracing::instrument(name = "account.logout", skip_all)]
    pub async fn logout(&self, session: uuid::Uuid) -> Result<(), StoreError> {
        self.store.delete_session(session).await
    }
}
