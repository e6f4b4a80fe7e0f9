//! The SMAP response envelope `{error_code, message, data}` and `ApiError`,
//! which every handler error becomes: a fitting 4xx/5xx status, a non-zero
//! `error_code` (the status times 100 plus a detail), a message naming the
//! field at fault, and the cause chain logged once for server-side failures.

use std::fmt;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;

/// `error_code` values: HTTP status × 100 + detail.
pub mod codes {
    pub const SUCCESS: u32 = 0;
    pub const MALFORMED_BODY: u32 = 40_000;
    pub const INVALID_FIELD: u32 = 40_001;
    pub const UNAUTHENTICATED: u32 = 40_100;
    pub const FORBIDDEN: u32 = 40_300;
    pub const NOT_FOUND: u32 = 40_400;
    pub const METHOD_NOT_ALLOWED: u32 = 40_500;
    pub const CONFLICT: u32 = 40_900;
    pub const PAYLOAD_TOO_LARGE: u32 = 41_300;
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 41_500;
    pub const RULE_VIOLATED: u32 = 42_200;
    pub const TOO_MANY_REQUESTS: u32 = 42_900;
    pub const INTERNAL: u32 = 50_000;
    pub const UNAVAILABLE: u32 = 50_300;
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<T: Serialize> {
    pub error_code: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldIssue>>,
    pub data: T,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldIssue {
    pub field: String,
    pub message: String,
}

/// The failure envelope, for the API description.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Non-zero: the HTTP status × 100 plus a detail.
    pub error_code: u32,
    pub message: String,
    pub errors: Option<Vec<FieldIssue>>,
    pub data: Option<serde_json::Value>,
}

/// 200 with the success envelope.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    respond(StatusCode::OK, data)
}

/// Any 2xx status with the success envelope.
pub fn respond<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(Envelope {
        error_code: codes::SUCCESS,
        message: "Success".to_owned(),
        errors: None,
        data,
    })
}

pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
    errors: Vec<FieldIssue>,
    data: serde_json::Value,
    /// Seconds for the `Retry-After` header, when the client should wait.
    retry_after: Option<u64>,
    cause: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            data: serde_json::Value::Null,
            retry_after: None,
            cause: None,
        }
    }

    /// 400 for a field that is missing, of the wrong type or malformed.
    pub fn invalid_field(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        let field = field.into();
        let message = format!("invalid `{field}`: {problem}");
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_FIELD,
            message.clone(),
        )
        .with_issue(field, problem.to_string())
    }

    /// 422 for a well-formed value that breaks a business rule.
    pub fn rule_violated(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        let field = field.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::RULE_VIOLATED,
            problem.to_string(),
        )
        .with_issue(field, problem.to_string())
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, codes::CONFLICT, message)
    }

    /// 503: a dependency is down; the client may retry.
    pub fn unavailable(message: impl Into<String>, cause: impl Into<anyhow::Error>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message).with_cause(cause)
    }

    /// 500: a bug or an unexpected failure; details go to the log only.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error",
        )
        .with_cause(cause)
    }

    pub fn with_issue(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldIssue {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    pub fn with_data(mut self, data: impl Serialize) -> Self {
        self.data = serde_json::to_value(data).unwrap_or_default();
        self
    }

    /// Adds `Retry-After: secs` (RFC 9110 §10.2.3) to the answer.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn with_cause(mut self, cause: impl Into<anyhow::Error>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn code(&self) -> u32 {
        self.code
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(cause) = &self.cause {
            write!(f, " (caused by: {cause:#})")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        // The one place a failure's cause chain is logged.
        if self.status.is_server_error() {
            let cause = self
                .cause
                .as_ref()
                .map(|c| format!("{c:#}"))
                .unwrap_or_default();
            tracing::error!(status = self.status.as_u16(), error_code = self.code, message = %self.message, cause = %cause, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), error_code = self.code, message = %self.message, "request refused");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs));
        }
        response.json(Envelope {
            error_code: self.code,
            message: self.message.clone(),
            errors: (!self.errors.is_empty()).then(|| self.errors.clone()),
            data: &self.data,
        })
    }
}
