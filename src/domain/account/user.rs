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
/// Failed logins in a row before the account is throttled, and for how long.
pub const MAX_FAILED_LOGINS: u32 = 5;
pub const LOGIN_THROTTLE_SECONDS: i64 = 300;
/// How long a login lasts (the token's lifetime and its session's).
pub const SESSION_TTL_HOURS: i64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

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
    Unverified,
    Active,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Unverified => "unverified",
            AccountStatus::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<AccountStatus> {
        match s {
            "unverified" => Some(AccountStatus::Unverified),
            "active" => Some(AccountStatus::Active),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least 8 characters")]
    TooShort,
    #[error("must be at most 128 characters")]
    TooLong,
}

/// A password as typed: 8-128 characters. Never logged, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(input: &str) -> Result<Self, PasswordError> {
        match input.chars().count() {
            n if n < 8 => Err(PasswordError::TooShort),
            n if n > 128 => Err(PasswordError::TooLong),
            _ => Ok(Self(input.to_owned())),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A PHC-format password hash (`$argon2id$...`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-100 characters without control characters")]
pub struct FullNameError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The OTP an unverified account must echo back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpChallenge {
    pub code: OtpCode,
    pub expires_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub attempts: u32,
}

impl OtpChallenge {
    pub fn new(code: OtpCode, now: DateTime<Utc>) -> Self {
        Self {
            code,
            expires_at: now + chrono::Duration::minutes(OTP_TTL_MINUTES),
            sent_at: now,
            attempts: 0,
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub full_name: Option<FullName>,
    pub locale: Locale,
    pub role: Role,
    pub status: AccountStatus,
    pub otp: Option<OtpChallenge>,
    pub failed_logins: u32,
    pub login_blocked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A login: what a token names (its `jti`) and what logout and a password
/// change end. A token is honoured only while its session exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// Equals the token's `exp`; after it the session is dead and forgotten.
    pub expires_at: DateTime<Utc>,
}

impl Session {
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
