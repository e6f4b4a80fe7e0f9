//! The attempt limits the identity store enforces in one atomic step each:
//! password checks, OTP comparisons and OTP re-sends, with the answers a
//! request for a slot gets.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::{
    account::{OtpChallenge, User},
    email_address::Email,
};

use super::OutboxEvent;

/// Which user a per-account limit applies to: by e-mail (compared ignoring
/// case, as everywhere in the store) or by id.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    /// The account with this e-mail address, ignoring case.
    Email(&'a Email),
    /// The account with this id.
    Id(Uuid),
}

/// The password-check limit: at most `max_checks` checks, then no check at
/// all for `lock_for`.
#[derive(Debug, Clone, Copy)]
pub struct PasswordLimit {
    /// Checks counted in one window (a right password clears the count);
    /// the check that reaches it may still run, and locks the account.
    /// At least 1.
    pub max_checks: u32,
    /// How long the lock lasts, from the check that set it. Positive.
    pub lock_for: Duration,
}

/// The answer to a request for a password-check slot
/// ([`IdentityStore::take_password_slot`](super::IdentityStore::take_password_slot)).
#[derive(Debug, Clone)]
pub enum PasswordSlot {
    /// No such user: nothing was counted.
    NoUser,
    /// A check may run. The user is the row after the slot was counted:
    /// its `failed_logins` (at least 1) is the `count_at_slot` to hand to
    /// `clear_password_failures` or `release_password_slot`, and its
    /// `login_blocked_until` is set when this slot was the last of the
    /// window.
    Granted(User),
    /// The account is locked; no check may run and nothing was counted.
    Locked {
        /// When the lock ends (UTC); normally in the future, but equal to
        /// the request's `now` when the lock ended while it was being read.
        until: DateTime<Utc>,
    },
}

/// The answer to a request for an OTP-check slot
/// ([`IdentityStore::take_otp_slot`](super::IdentityStore::take_otp_slot)).
#[derive(Debug, Clone)]
pub enum OtpSlot {
    /// The comparison may run; `user.otp` holds the code and the attempts
    /// counted so far, this one included (at least 1, at most the limit).
    Granted(User),
    /// No slot, nothing counted: the account is verified, has no live code,
    /// or its code used up its attempts. `None` when no such user.
    Refused(Option<User>),
}

/// The answer to a request for an OTP re-send slot
/// ([`IdentityStore::take_resend_slot`](super::IdentityStore::take_resend_slot)).
#[derive(Debug, Clone)]
pub enum ResendSlot {
    /// The challenge to send now (the unexpired code, or the fresh one)
    /// and the user row as written; the challenge's `sent_at` is the
    /// slot's time, what `release_resend_slot` needs to give it back.
    Granted(OtpChallenge, User),
    /// No slot, nothing written: verified already, or sent within the
    /// cool-down. `None` when no such user.
    Refused(Option<User>),
}

/// Builds the events that report a granted re-send slot, from the challenge
/// granted and the user row as written; the store writes them in the
/// slot's transaction. Runs inside that transaction (in memory, under the
/// store's lock): it does no I/O.
pub type ResendEvents<'a> = &'a (dyn Fn(&OtpChallenge, &User) -> Vec<OutboxEvent> + Send + Sync);
