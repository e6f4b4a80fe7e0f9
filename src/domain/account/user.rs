//! The user record and the values it carries: credentials, role, status,
//! the OTP challenge of an unverified account, and login sessions.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{email_address::Email, locale::Locale, otp::OtpCode};

/// How long an OTP stays valid (DESIGN §6).
pub const OTP_TTL_MINUTES: i64 = 10;
/// Wrong OTPs tolerated before the challenge is void.
pub const MAX_OTP_ATTEMPTS: u32 = 5;
/// Minimum wait between two OTP e-mails to one account.
pub const OTP_RESEND_COOLDOWN_SECONDS: i64 = 60;
/// Password checks an account takes (login, OTP re-send, password change)
/// before it is throttled; a right password resets the count.
pub const MAX_FAILED_LOGINS: u32 = 5;
/// How long a throttled account takes no password check, in seconds.
pub const LOGIN_THROTTLE_SECONDS: i64 = 300;
/// How long a login lasts (the token's lifetime and its session's).
pub const SESSION_TTL_HOURS: i64 = 24;

/// What an account may do; read from the store on every request, so a
/// change applies to open sessions at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every registered account: its own profile and subscription.
    User,
    /// Also plans, roles, other users and their subscriptions.
    Admin,
}

impl Role {
    /// The wire and database name: `user` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The role named exactly `s` (lower case, as [`Role::as_str`] writes
    /// it); `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// `unverified` until the e-mail OTP is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Registered; the OTP sent by e-mail is not confirmed yet, so login is
    /// refused.
    Unverified,
    /// The OTP was confirmed; never goes back to unverified.
    Active,
}

impl AccountStatus {
    /// The wire and database name: `unverified` or `active`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Unverified => "unverified",
            AccountStatus::Active => "active",
        }
    }

    /// The status named exactly `s` (as [`AccountStatus::as_str`] writes
    /// it); `None` for anything else.
    pub fn parse(s: &str) -> Option<AccountStatus> {
        match s {
            "unverified" => Some(AccountStatus::Unverified),
            "active" => Some(AccountStatus::Active),
            _ => None,
        }
    }
}

/// Why a string is not a [`Password`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than 8 characters (Unicode scalar values, not bytes).
    #[error("must be at least 8 characters")]
    TooShort,
    /// More than 128 characters.
    #[error("must be at most 128 characters")]
    TooLong,
}

/// A password as typed: 8-128 characters. Never logged, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// `input` as a password, kept exactly as typed (not trimmed).
    ///
    /// # Errors
    ///
    /// [`PasswordError::TooShort`] under 8 characters,
    /// [`PasswordError::TooLong`] over 128.
    pub fn parse(input: &str) -> Result<Self, PasswordError> {
        match input.chars().count() {
            n if n < 8 => Err(PasswordError::TooShort),
            n if n > 128 => Err(PasswordError::TooLong),
            _ => Ok(Self(input.to_owned())),
        }
    }

    /// The plain text, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A PHC-format password hash (`$argon2id$...`, salt and parameters
/// included), as the hasher wrote it; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// Why a string is not a [`FullName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-100 characters without control characters")]
pub struct FullNameError;

/// A display name: trimmed, 1-100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    /// `input` trimmed of surrounding white space.
    ///
    /// # Errors
    ///
    /// [`FullNameError`] when the trimmed name is empty, over 100
    /// characters, or holds a control character.
    pub fn parse(input: &str) -> Result<Self, FullNameError> {
        let name = input.trim();
        let ok =
            !name.is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control);
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(FullNameError)
        }
    }

    /// The name as stored (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The OTP an unverified account must echo back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpChallenge {
    /// The six digits e-mailed to the account.
    pub code: OtpCode,
    /// UTC; [`OTP_TTL_MINUTES`] after the code was made. A re-send of the
    /// same code keeps it.
    pub expires_at: DateTime<Utc>,
    /// UTC; when the code was last e-mailed (the re-send cool-down counts
    /// from it).
    pub sent_at: DateTime<Utc>,
    /// Checks taken on this code, right or wrong; at most
    /// [`MAX_OTP_ATTEMPTS`], then the code is void.
    pub attempts: u32,
}

impl OtpChallenge {
    /// A fresh challenge for `code`, sent `now`, no attempt taken.
    pub fn new(code: OtpCode, now: DateTime<Utc>) -> Self {
        Self {
            code,
            expires_at: now + chrono::Duration::minutes(OTP_TTL_MINUTES),
            sent_at: now,
            attempts: 0,
        }
    }

    /// True from `expires_at` on.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Never changes; tokens and events name the account by it.
    pub id: Uuid,
    /// The login; no two accounts share it.
    pub email: Email,
    /// The current password's hash; replaced by a password change.
    pub password_hash: PasswordHash,
    /// Display name, if the user gave one.
    pub full_name: Option<FullName>,
    /// Language of the account's e-mails.
    pub locale: Locale,
    /// What the account may do.
    pub role: Role,
    /// `Unverified` until the OTP is confirmed.
    pub status: AccountStatus,
    /// The pending challenge while unverified (`None` once active).
    pub otp: Option<OtpChallenge>,
    /// Password checks taken since the last right password; at most
    /// [`MAX_FAILED_LOGINS`] before the lock.
    pub failed_logins: u32,
    /// UTC; no password check runs before it (`None`: not locked).
    pub login_blocked_until: Option<DateTime<Utc>>,
    /// UTC; when the account registered.
    pub created_at: DateTime<Utc>,
    /// UTC; the last write to the account; `>= created_at`.
    pub updated_at: DateTime<Utc>,
}

/// A login: what a token names (its `jti`) and what logout and a password
/// change end. A token is honoured only while its session exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token's `jti`.
    pub id: Uuid,
    /// The account signed in; the token's `sub`.
    pub user_id: Uuid,
    /// UTC; the login (or password change) that opened it.
    pub created_at: DateTime<Utc>,
    /// Equals the token's `exp`; after it the session is dead and forgotten.
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// A session opened `now`, lasting [`SESSION_TTL_HOURS`].
    pub fn new(id: Uuid, user_id: Uuid, now: DateTime<Utc>) -> Self {
        Self {
            id,
            user_id,
            created_at: now,
            expires_at: now + chrono::Duration::hours(SESSION_TTL_HOURS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert_eq!(Password::parse("short"), Err(PasswordError::TooShort));
        assert!(Password::parse("long enough").is_ok());
        assert_eq!(
            Password::parse(&"x".repeat(129)),
            Err(PasswordError::TooLong)
        );
        assert!(!format!("{:?}", Password::parse("secret-password").unwrap()).contains("secret"));
    }

    #[test]
    fn full_names_are_trimmed_and_bounded() {
        assert_eq!(FullName::parse("  Ann Lee ").unwrap().as_str(), "Ann Lee");
        assert!(FullName::parse("   ").is_err());
        assert!(FullName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn otp_challenges_expire_after_ten_minutes() {
        let now = Utc::now();
        let otp = OtpChallenge::new(OtpCode::from_number(1), now);
        assert!(!otp.is_expired(now + chrono::Duration::minutes(9)));
        assert!(otp.is_expired(now + chrono::Duration::minutes(10)));
    }
}
