//! The error answers routes list in their OpenAPI `responses`, each
//! described once here so that every route that can give one documents it
//! alike (all carry the SMAP envelope [`ErrorBody`]).

use utoipa::IntoResponses;

use super::response::ErrorBody;

/// 400, 413 and 415: what any route reading a JSON body can answer.
#[derive(IntoResponses)]
pub enum BadJsonBody {
    #[response(
        status = 400,
        description = "Bad input; `errors[0].field` names the field"
    )]
    BadInput(ErrorBody),
    #[response(status = 413, description = "Body over 64 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Body is not JSON")]
    NotJson(ErrorBody),
}

/// 413 and 415 alone, for a route that documents its own 400.
#[derive(IntoResponses)]
pub enum UnreadableBody {
    #[response(status = 413, description = "Body over 64 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Body is not JSON")]
    NotJson(ErrorBody),
}

/// 400: a path, query or body field is malformed.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "Bad input; `errors[0].field` names the field"
)]
pub struct BadInput(pub ErrorBody);

/// 401: no valid token, or its session has ended.
#[derive(IntoResponses)]
#[response(status = 401, description = "Missing or invalid credentials")]
pub struct Unauthenticated(pub ErrorBody);

/// 403: signed in, but not allowed to do this.
#[derive(IntoResponses)]
#[response(status = 403, description = "Not allowed")]
pub struct Forbidden(pub ErrorBody);

/// 404: what the path names does not exist.
#[derive(IntoResponses)]
#[response(status = 404, description = "Not found")]
pub struct NotFound(pub ErrorBody);

/// 409: the request conflicts with what is stored.
#[derive(IntoResponses)]
#[response(status = 409, description = "Conflicts with the current state")]
pub struct Conflict(pub ErrorBody);

/// 422: well-formed, but against a business rule.
#[derive(IntoResponses)]
#[response(status = 422, description = "Breaks a business rule")]
pub struct RuleViolated(pub ErrorBody);

/// 409 on a subscription transition that lost or does not apply.
#[derive(IntoResponses)]
#[response(
    status = 409,
    description = "Not allowed in the current status, or a concurrent request changed the subscription first (nothing written; the message names the status found)"
)]
pub struct SubscriptionConflict(pub ErrorBody);

/// 429: throttled for a while that the answer names.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "Throttled; `data.retry_after_secs` says when to retry"
)]
pub struct Throttled(pub ErrorBody);

/// 503: a dependency (database, broker) is down.
#[derive(IntoResponses)]
#[response(status = 503, description = "A dependency is unavailable; retry later")]
pub struct Unavailable(pub ErrorBody);

/// 503 on routes that check a password: a dependency is down, or the
/// password hashers are saturated (then with `Retry-After`).
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "A dependency is unavailable, or too many password checks at once (then with `Retry-After` and `data.retry_after_secs`); retry later",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying; sent when password hashing is saturated"))
)]
pub struct PasswordCheckUnavailable(pub ErrorBody);
