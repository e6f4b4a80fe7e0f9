//! Request extractors that turn bad input into SMAP errors naming the field:
//! `JsonBody` (content type, size limit, JSON path of the failure), and the
//! callers — `InternalCaller` (the `X-Internal-Key` header, compared in
//! constant time) and `ProgressReader` (internal or a signed-in user).

use std::{future::Future, pin::Pin};

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    http::{StatusCode, header},
    web,
};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::{
    response::{ApiError, codes},
    state::AppState,
};
use crate::{
    app::auth::{AUTH_COOKIE, Claims},
    domain::account::User,
};

pub const INTERNAL_KEY_HEADER: &str = "X-Internal-Key";

/// Largest JSON body any route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body of type `T`.
pub struct JsonBody<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Reads `bytes` as a JSON object of type `T`; the error names the JSON path
/// that failed. Every request body of this API is an object, and parsing
/// through `Value` first keeps serde from reading an array as a struct.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_BODY,
            format!("malformed JSON body: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid_field("body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let problem = e.into_inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        let missing = problem
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "body".to_owned(),
            (parent, Some(name)) => format!("{parent}.{name}"),
            (parent, None) => parent.to_owned(),
        };
        ApiError::invalid_field(field, problem)
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    codes::UNSUPPORTED_MEDIA_TYPE,
                    "the body must be JSON: send `Content-Type: application/json`",
                ));
            }
            let bytes = body.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        codes::PAYLOAD_TOO_LARGE,
                        format!("the body is over the {MAX_BODY_BYTES}-byte limit"),
                    )
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        codes::MALFORMED_BODY,
                        format!("unreadable body: {e}"),
                    )
                }
            })?;
            parse_json(&bytes).map(JsonBody)
        })
    }
}

fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state is not registered")))
}

/// `Ok(None)` without the header, `Ok(Some(()))` for the right key.
fn internal_key(req: &HttpRequest) -> Result<Option<()>, ApiError> {
    let Some(given) = req.headers().get(INTERNAL_KEY_HEADER) else {
        return Ok(None);
    };
    let expected = state(req)?.internal_key.expose_secret().as_bytes();
    // Constant time for equal lengths; a length mismatch reveals only that.
    if bool::from(given.as_bytes().ct_eq(expected)) {
        Ok(Some(()))
    } else {
        Err(ApiError::forbidden(format!(
            "the `{INTERNAL_KEY_HEADER}` header is wrong"
        )))
    }
}

/// A caller of an internal route: a SMAP service holding the internal key.
pub struct InternalCaller;

impl FromRequest for InternalCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(match internal_key(req) {
            Ok(Some(())) => Ok(InternalCaller),
            Ok(None) => Err(ApiError::unauthenticated(format!(
                "internal route: send the `{INTERNAL_KEY_HEADER}` header"
            ))),
            Err(e) => Err(e),
        })
    }
}

/// The bearer token of a request: the `Authorization: Bearer` header, else
/// the auth cookie. An explicit header wins: a stale cookie left by a lost
/// logout answer must not hide the token a client sends on purpose.
fn bearer_token(req: &HttpRequest) -> Option<String> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    header.or_else(|| req.cookie(AUTH_COOKIE).map(|c| c.value().to_owned()))
}

/// The claims of the request's token, checked for signature, expiry,
/// issuer and audience but not for its session: `Ok(None)` without a token.
pub fn token_claims(req: &HttpRequest) -> Result<Option<Claims>, ApiError> {
    let Some(token) = bearer_token(req) else {
        return Ok(None);
    };
    state(req)?
        .tokens
        .verify(&token)
        .map(Some)
        .map_err(|e| ApiError::unauthenticated(e.to_string()))
}

/// A signed-in user (any role): a valid token whose session is still open.
/// `user` is read from the store on this request (one indexed read), so a
/// role change or a revocation takes effect at once.
pub struct CurrentUser {
    pub session: uuid::Uuid,
    pub user: User,
}

/// The signed-in user of a request: `Ok(None)` without a token.
async fn current_user(req: &HttpRequest) -> Result<Option<CurrentUser>, ApiError> {
    let Some(claims) = token_claims(req)? else {
        return Ok(None);
    };
    let user = state(req)?.accounts.session_user(claims.jti).await?;
    if user.id != claims.sub {
        return Err(ApiError::unauthenticated(
            "the token does not match its session",
        ));
    }
    Ok(Some(CurrentUser {
        session: claims.jti,
        user,
    }))
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            current_user(&req).await?.ok_or_else(|| {
                ApiError::unauthenticated("sign in first: no auth cookie or bearer token")
            })
        })
    }
}

/// Who may read progress: a SMAP service (internal key) or a signed-in user.
pub enum ProgressReader {
    Internal,
    User(Box<CurrentUser>),
}

impl FromRequest for ProgressReader {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if internal_key(&req)?.is_some() {
                return Ok(ProgressReader::Internal);
            }
            current_user(&req)
                .await?
                .map(|user| ProgressReader::User(Box::new(user)))
                .ok_or_else(|| {
                    ApiError::unauthenticated(format!(
                        "sign in, or send the `{INTERNAL_KEY_HEADER}` header"
                    ))
                })
        })
    }
}
