//! The account use cases' errors as HTTP answers.

use actix_web::http::StatusCode;

use super::{not_queued, throttled, too_many};
use crate::{
    app::http::response::{ApiError, codes},
    domain::account::{
        ChangePasswordError, LoginError, RegisterError, SendOtpError, SessionError, UserError,
        VerifyOtpError,
    },
};

/// 401 for an unknown e-mail or a wrong password (told apart nowhere).
fn invalid_credentials(message: String) -> ApiError {
    ApiError::unauthenticated(message)
}

/// 409 for a request the account's state has made moot, or a lost race.
fn account_conflict(message: String) -> ApiError {
    ApiError::conflict(message)
}

/// 400 on the `otp` field: a wrong or expired code.
fn otp_rejected(message: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        codes::INVALID_FIELD,
        message.clone(),
    )
    .with_issue("otp", message)
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        let message = error.to_string();
        match error {
            RegisterError::EmailTaken => {
                ApiError::conflict(message).with_issue("email", "already registered")
            }
            RegisterError::EventNotPublished(_) => not_queued(error),
            RegisterError::Hash(e) => e.into(),
            RegisterError::Store(e) => e.into(),
        }
    }
}

impl From<SendOtpError> for ApiError {
    fn from(error: SendOtpError) -> Self {
        let message = error.to_string();
        match error {
            SendOtpError::InvalidCredentials => invalid_credentials(message),
            SendOtpError::AlreadyVerified => account_conflict(message),
            SendOtpError::LoginThrottled { retry_after_secs }
            | SendOtpError::OtpCooldown { retry_after_secs } => {
                throttled(message, retry_after_secs)
            }
            SendOtpError::EventNotPublished(_) => not_queued(error),
            SendOtpError::Hash(e) => e.into(),
            SendOtpError::Store(e) => e.into(),
        }
    }
}

impl From<VerifyOtpError> for ApiError {
    fn from(error: VerifyOtpError) -> Self {
        let message = error.to_string();
        match error {
            VerifyOtpError::OtpInvalid { .. } | VerifyOtpError::OtpExpired => otp_rejected(message),
            VerifyOtpError::OtpLocked => too_many(message),
            VerifyOtpError::AlreadyVerified | VerifyOtpError::Conflict => account_conflict(message),
            VerifyOtpError::Store(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        let message = error.to_string();
        match error {
            LoginError::InvalidCredentials => invalid_credentials(message),
            LoginError::LoginThrottled { retry_after_secs } => throttled(message, retry_after_secs),
            LoginError::NotVerified => ApiError::forbidden(message),
            LoginError::Hash(e) => e.into(),
            LoginError::Store(e) => e.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::SessionEnded => ApiError::unauthenticated(error.to_string()),
            SessionError::Store(e) => e.into(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::UserNotFound => ApiError::not_found(error.to_string()),
            UserError::Store(e) => e.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(error: ChangePasswordError) -> Self {
        let message = error.to_string();
        match error {
            ChangePasswordError::WrongPassword => {
                ApiError::invalid_field("current_password", message)
            }
            ChangePasswordError::LoginThrottled { retry_after_secs } => {
                throttled(message, retry_after_secs)
            }
            ChangePasswordError::Conflict => account_conflict(message),
            ChangePasswordError::Hash(e) => e.into(),
            ChangePasswordError::Store(e) => e.into(),
        }
    }
}
