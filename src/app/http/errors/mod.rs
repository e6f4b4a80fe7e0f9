//! How the use cases' errors answer over HTTP: one `From<…Error> for
//! ApiError` per domain error enum (accounts in `account.rs`, billing in
//! `billing.rs`), built from the helpers here so that each status, code and
//! message is decided once.

mod account;
mod billing;

use actix_web::http::StatusCode;

use super::response::{ApiError, codes};
use crate::ports::{HashError, StoreError};

/// A store failure: 503 when unreachable, 404/409 for a row that is gone or
/// moved, 500 otherwise.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
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
}

/// A hasher failure: 503 with `Retry-After` when saturated, else 500.
impl From<HashError> for ApiError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy { retry_after_secs } => ApiError::unavailable(error.to_string(), error)
                .with_retry_after(retry_after_secs)
                .with_data(serde_json::json!({ "retry_after_secs": retry_after_secs })),
            HashError::Failed(_) => ApiError::internal(error),
        }
    }
}

/// 429 naming when to retry in `data.retry_after_secs`.
fn throttled(message: String, retry_after_secs: i64) -> ApiError {
    too_many(message).with_data(serde_json::json!({ "retry_after_secs": retry_after_secs }))
}

/// 429 without a time to wait.
fn too_many(message: String) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        codes::TOO_MANY_REQUESTS,
        message,
    )
}

/// 503 for an event that could not be queued: the request may be retried.
fn not_queued(error: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::unavailable(error.to_string(), error)
}

#[cfg(test)]
mod tests;
