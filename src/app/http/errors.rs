//! How account and billing errors answer over HTTP.

use actix_web::http::StatusCode;

use super::response::{ApiError, codes};
use crate::{
    domain::{account::AccountError, billing::BillingError},
    ports::{HashError, StoreError},
};

fn store(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(_) => {
            ApiError::unavailable("the database is unavailable, retry later", error)
        }
        StoreError::NotFound => ApiError::not_found("not found"),
        StoreError::Conflict => {
            ApiError::conflict("changed by a concurrent request; read it again")
        }
        other => ApiError::internal(other),
    }
}

fn throttled(message: String, retry_after_secs: i64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        codes::TOO_MANY_REQUESTS,
        message,
    )
    .with_data(serde_json::json!({ "retry_after_secs": retry_after_secs }))
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        let message = error.to_string();
        match error {
            AccountError::EmailTaken => {
                ApiError::conflict(message).with_issue("email", "already registered")
            }
            AccountError::InvalidCredentials => ApiError::unauthenticated(message),
            AccountError::NotVerified => ApiError::forbidden(message),
            AccountError::AlreadyVerified => ApiError::conflict(message),
            AccountError::OtpExpired | AccountError::OtpInvalid { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_FIELD,
                message.clone(),
            )
            .with_issue("otp", message),
            AccountError::OtpLocked => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_REQUESTS,
                message,
            ),
            AccountError::OtpCooldown { retry_after_secs }
            | AccountError::LoginThrottled { retry_after_secs } => {
                throttled(message, retry_after_secs)
            }
            AccountError::WrongPassword => ApiError::invalid_field("current_password", message),
            AccountError::UserNotFound => ApiError::not_found(message),
            AccountError::SessionEnded => ApiError::unauthenticated(message),
            AccountError::Conflict => ApiError::conflict(message),
            AccountError::EventNotPublished(_) => ApiError::unavailable(message, error),
            AccountError::Store(e) => store(e),
            AccountError::Hash(HashError::Busy { retry_after_secs }) => {
                ApiError::unavailable(message, error)
                    .with_retry_after(retry_after_secs)
                    .with_data(serde_json::json!({ "retry_after_secs": retry_after_secs }))
            }
            AccountError::Hash(HashError::Failed(_)) => ApiError::internal(error),
        }
    }
}

impl From<BillingError> for ApiError {
    fn from(error: BillingError) -> Self {
        let message = error.to_string();
        match error {
            BillingError::SubscriptionNotFound | BillingError::PlanNotFound => {
                ApiError::not_found(message)
            }
            BillingError::NotOwner => ApiError::forbidden(message),
            BillingError::WrongStatus { .. }
            | BillingError::Conflict { .. }
            | BillingError::PlanChanged
            | BillingError::PlanCodeTaken
            | BillingError::PlanInUse => ApiError::conflict(message),
            BillingError::BadPlan(problem) => ApiError::rule_violated("plan_code", problem),
            BillingError::Store(e) => store(e),
        }
    }
}
