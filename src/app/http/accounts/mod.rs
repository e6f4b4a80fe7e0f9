//! Authentication and user routes (DESIGN §6), one file per resource:
//! `auth` (register, OTP, login, logout, the signed-in user), `users`
//! (one's own profile and password) and `admin` (the user list). What
//! they share lives here: field parsing, the user body, the auth cookie.

mod admin;
mod auth;
mod users;

pub use admin::*;
pub use auth::*;
pub use users::*;

use actix_web::{
    HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieAge},
};
use serde::Serialize;
use utoipa::openapi::{ObjectBuilder, Type, schema::SchemaType};
use uuid::Uuid;

use super::{
    extract::CurrentUser,
    response::{ApiError, ok},
    state::AppState,
};
use crate::{
    app::auth::{AUTH_COOKIE, TOKEN_TTL_HOURS},
    domain::{
        account::{Password, Role, Session, User},
        email_address::Email,
        locale::Locale,
        timestamp::Timestamp,
    },
};

/// What an e-mail field accepts, as OpenAPI documents it (the domain's
/// `Email::parse` is the authority; this is its ECMA-262 rendering).
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$";

/// What a full name accepts: at least one visible character and no control
/// characters.
pub const FULL_NAME_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

/// The schema of every e-mail field of a request body.
#[allow(deprecated)] // `example` (not `examples`) keeps the document as it was.
fn email_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(254))
        .pattern(Some(EMAIL_PATTERN))
        .example(Some("ann@example.com".into()))
}

/// The schema of every optional full-name field of a request body.
#[allow(deprecated)] // `example` (not `examples`) keeps the document as it was.
fn full_name_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(FULL_NAME_PATTERN))
        .example(Some("Nguyễn An".into()))
}

pub(super) fn email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw.trim()).map_err(|e| ApiError::invalid_field("email", e))
}

pub(super) fn password(field: &'static str, raw: &str) -> Result<Password, ApiError> {
    Password::parse(raw).map_err(|e| ApiError::invalid_field(field, e))
}

/// The request header registration reads its locale from when the body
/// has none (DESIGN §6).
pub const LANG_HEADER: &str = "lang";

pub(super) fn locale(raw: &str, field: &'static str) -> Result<Locale, ApiError> {
    raw.trim()
        .parse()
        .map_err(|e| ApiError::invalid_field(field, e))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserBody {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    #[schema(value_type = String, example = "en")]
    pub locale: Locale,
    #[schema(value_type = String, example = "user")]
    pub role: Role,
    pub status: &'static str,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T10:30:45.123Z")]
    pub created_at: Timestamp,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.to_string(),
            full_name: u.full_name.as_ref().map(|n| n.as_str().to_owned()),
            locale: u.locale,
            role: u.role,
            status: u.status.as_str(),
            created_at: Timestamp::new(u.created_at),
        }
    }
}

pub(super) fn auth_cookie(state: &AppState, token: String, age: CookieAge) -> Cookie<'static> {
    Cookie::build(AUTH_COOKIE, token)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .path("/")
        .max_age(age)
        .finish()
}

/// An answer that carries a session's token in the body (built by `body`)
/// and in the auth cookie.
pub(super) fn signed_in<T: Serialize>(
    state: &AppState,
    user: &User,
    session: &Session,
    body: impl FnOnce(String, Timestamp) -> T,
) -> Result<HttpResponse, ApiError> {
    let token = state
        .tokens
        .issue(session, user.role)
        .map_err(ApiError::internal)?;
    let cookie = auth_cookie(state, token.clone(), CookieAge::hours(TOKEN_TTL_HOURS));
    let mut response = ok(body(token, Timestamp::new(session.expires_at)));
    response.add_cookie(&cookie).map_err(ApiError::internal)?;
    Ok(response)
}

/// `/authentication/me` and `/users/me` (DESIGN names both) answer alike.
pub(super) fn signed_in_user(user: &CurrentUser) -> HttpResponse {
    ok(UserBody::from(&user.user))
}

pub fn uuid_param(raw: &str, field: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid_field(field, "must be a UUID"))
}
