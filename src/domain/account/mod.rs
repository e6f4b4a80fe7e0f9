//! Accounts: registration, e-mail verification, login, sessions, profiles
//! and their administration. The use cases live one per file on
//! `AccountService`, which holds the ports they share; plans and
//! subscriptions are [`crate::domain::billing`].

mod admin;
mod login;
mod profile;
mod register;
mod send_otp;
mod user;
mod verify_otp;

pub use register::Registration;
pub use user::{
    AccountStatus, FullName, FullNameError, LOGIN_THROTTLE_SECONDS, MAX_FAILED_LOGINS,
    MAX_OTP_ATTEMPTS, OTP_RESEND_COOLDOWN_SECONDS, OTP_TTL_MINUTES, OtpChallenge, Password,
    PasswordError, PasswordHash, Role, SESSION_TTL_HOURS, Session, User,
};

use std::sync::Arc;

use crate::{
    domain::{billing::BillingService, events::EventService},
    ports::{
        Clock, HashError, IdGenerator, IdentityStore, OtpSource, PasswordHasher, PublishError,
        StoreError,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error("the account is not verified yet: verify the OTP sent by e-mail first")]
    NotVerified,
    #[error("the account is already verified")]
    AlreadyVerified,
    #[error("OTP expired, please request a new one")]
    OtpExpired,
    #[error("wrong OTP; {attempts_left} attempt(s) left")]
    OtpInvalid { attempts_left: u32 },
    #[error("too many wrong OTPs, please request a new one")]
    OtpLocked,
    #[error("an OTP was sent moments ago; retry in {retry_after_secs} s")]
    OtpCooldown { retry_after_secs: i64 },
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    LoginThrottled { retry_after_secs: i64 },
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("no such user")]
    UserNotFound,
    /// The token's session was ended (logout, password change) or expired.
    #[error("the session has ended: sign in again")]
    SessionEnded,
    /// A concurrent request changed the account first; nothing was written.
    #[error("the account was changed by a concurrent request; read it again and retry")]
    Conflict,
    /// The verification e-mail could not be queued; nothing was stored.
    #[error("the verification e-mail could not be queued; please retry")]
    EventNotPublished(#[source] PublishError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => AccountError::EmailTaken,
            StoreError::RolledBack(e) => AccountError::EventNotPublished(e),
            StoreError::Conflict => AccountError::Conflict,
            other => AccountError::Store(other),
        }
    }
}

pub struct AccountService {
    store: Arc<dyn IdentityStore>,
    hasher: Arc<dyn PasswordHasher>,
    otps: Arc<dyn OtpSource>,
    events: Arc<EventService>,
    billing: Arc<BillingService>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl AccountService {
    pub fn new(
        store: Arc<dyn IdentityStore>,
        hasher: Arc<dyn PasswordHasher>,
        otps: Arc<dyn OtpSource>,
        events: Arc<EventService>,
        billing: Arc<BillingService>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            store,
            hasher,
            otps,
            events,
            billing,
            clock,
            ids,
        }
    }
}
