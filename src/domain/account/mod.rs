//! Accounts: registration, e-mail verification, login, sessions, profiles
//! and their administration. The use cases live one per file on
//! `AccountService`, which holds the ports they share; plans and
//! subscriptions are [`crate::domain::billing`]. Each use case has its own
//! error enum naming only the cases it can meet (decision 63).

mod admin;
mod login;
mod profile;
mod register;
mod send_otp;
mod user;
mod verify_otp;

pub use login::{LoginError, SessionError};
pub use profile::{ChangePasswordError, UserError};
pub use register::{RegisterError, Registration};
pub use send_otp::SendOtpError;
pub use user::{
    AccountStatus, FullName, FullNameError, LOGIN_THROTTLE_SECONDS, MAX_FAILED_LOGINS,
    MAX_OTP_ATTEMPTS, OTP_RESEND_COOLDOWN_SECONDS, OTP_TTL_MINUTES, OtpChallenge, Password,
    PasswordError, PasswordHash, Role, SESSION_TTL_HOURS, Session, User,
};
pub use verify_otp::VerifyOtpError;

use std::sync::Arc;

use crate::{
    domain::{billing::BillingService, events::EventService},
    ports::{Clock, IdGenerator, IdentityStore, OtpSource, PasswordHasher},
};

/// The account use cases, one method each (one file each in this folder),
/// over the ports they share. Cheap to share behind an `Arc`: it holds
/// only `Arc`s. Each method returns its own error enum, listing only the
/// cases it can meet.
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
    /// Wires the use cases to their ports; `billing` starts the trial of a
    /// verified account.
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

#[cfg(test)]
mod tests;
