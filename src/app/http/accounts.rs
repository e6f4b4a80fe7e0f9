//! Authentication and user routes (DESIGN §6): register, OTP, login,
//! logout, the current user, profile and password, and the admin views.

use super::response::{Envelope, ErrorBody};
use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieAge},
    get,
    http::StatusCode,
    post, put, web,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    extract::{CurrentUser, JsonBody, token_claims},
    response::{ApiError, ok, respond},
    state::AppState,
};
use crate::{
    app::auth::{AUTH_COOKIE, TOKEN_TTL_HOURS},
    domain::{
        account::{FullName, Password, Registration, Role, Session, User},
        email_address::Email,
        locale::Locale,
        otp::OtpCode,
        timestamp::Timestamp,
    },
};

fn email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw.trim()).map_err(|e| ApiError::invalid_field("email", e))
}

fn password(field: &'static str, raw: &str) -> Result<Password, ApiError> {
    Password::parse(raw).map_err(|e| ApiError::invalid_field(field, e))
}

/// The request header registration reads its locale from when the body
/// has none (DESIGN §6).
pub const LANG_HEADER: &str = "lang";

fn locale(raw: &str, field: &'static str) -> Result<Locale, ApiError> {
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
        example = "ann@example.com"
    )]
    pub email: String,
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub password: String,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$", example = "Nguyễn An")]
    pub full_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(en|vi)$", example = "vi")]
    pub locale: Option<String>,
}

/// Publishes `email.verification.requested` in the registration's transaction.
#[utoipa::path(
    post,
    path = "/authentication/register",
    tag = "authentication",
    request_body = RegisterRequest,
    params(("lang" = Option<String>, Header, description = "The locale when the body has none: a language tag or a list of them (`vi-VN`, `vi-VN,vi;q=0.9`); the first supported language (`en`, `vi`) wins, anything else means `en`.", example = "vi-VN")),
    responses((status = 201, description = "Success", body = Envelope<UserBody>), (status = 400, description = "Bad input; `errors[0].field` names the field", body = ErrorBody), (status = 413, description = "Body over 64 KiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 409, description = "Conflicts with the current state", body = ErrorBody), (status = 503, description = "A dependency is unavailable, or too many password checks at once (then with `Retry-After` and `data.retry_after_secs`); retry later", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying; sent when password hashing is saturated")))),
    description = "Register an account. Publishes `email.verification.requested` inside the registration transaction."
)]
#[post("/authentication/register")]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    // The body's locale (strict: the client chose it), else the `lang`
    // header (lenient: `vi-VN` is `vi`, anything unsupported English),
    // else English.
    let locale = match (&body.locale, req.headers().get(LANG_HEADER)) {
        (Some(raw), _) => locale(raw, "locale")?,
        (None, Some(header)) => Locale::from_language_tags(header.to_str().unwrap_or_default()),
        (None, None) => Locale::En,
    };
    let registration = Registration {
        email: email(&body.email)?,
        password: password("password", &body.password)?,
        full_name: body
            .full_name
            .as_deref()
            .map(FullName::parse)
            .transpose()
            .map_err(|e| ApiError::invalid_field("full_name", e))?,
        locale,
    };
    let user = state.accounts.register(registration).await?;
    Ok(respond(StatusCode::CREATED, UserBody::from(&user)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CredentialsRequest {
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
        example = "ann@example.com"
    )]
    pub email: String,
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub password: String,
}

/// Publishes `email.verification.requested` again.
#[utoipa::path(
    post,
    path = "/authentication/send-otp",
    tag = "authentication",
    request_body = CredentialsRequest,
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), (status = 400, description = "Bad input; `errors[0].field` names the field", body = ErrorBody), (status = 413, description = "Body over 64 KiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 401, description = "Missing or invalid credentials", body = ErrorBody), (status = 409, description = "Conflicts with the current state", body = ErrorBody), (status = 429, description = "Throttled; `data.retry_after_secs` says when to retry", body = ErrorBody), (status = 503, description = "A dependency is unavailable, or too many password checks at once (then with `Retry-After` and `data.retry_after_secs`); retry later", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying; sent when password hashing is saturated")))),
    description = "Send the OTP again. Publishes `email.verification.requested`."
)]
#[post("/authentication/send-otp")]
pub async fn send_otp(
    state: web::Data<AppState>,
    body: JsonBody<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    state
        .accounts
        .send_otp(&email(&body.email)?, &password("password", &body.password)?)
        .await?;
    Ok(ok(serde_json::json!({ "sent": true })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerifyRequest {
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
        example = "ann@example.com"
    )]
    pub email: String,
    #[schema(pattern = "^[0-9]{6}$", example = "482913")]
    pub otp: String,
}

/// Publishes `subscription.created` (the 14-day trial).
#[utoipa::path(
    post,
    path = "/authentication/verify-otp",
    tag = "authentication",
    request_body = VerifyRequest,
    responses((status = 200, description = "Success", body = Envelope<UserBody>), (status = 400, description = "Bad input; `errors[0].field` names the field", body = ErrorBody), (status = 413, description = "Body over 64 KiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 409, description = "Conflicts with the current state", body = ErrorBody), (status = 429, description = "Throttled; `data.retry_after_secs` says when to retry", body = ErrorBody), (status = 503, description = "A dependency is unavailable; retry later", body = ErrorBody)),
    description = "Verify the OTP: the account becomes active and a 14-day trial starts. Publishes `subscription.created`."
)]
#[post("/authentication/verify-otp")]
pub async fn verify_otp(
    state: web::Data<AppState>,
    body: JsonBody<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    let code = OtpCode::parse(body.otp.trim()).map_err(|e| ApiError::invalid_field("otp", e))?;
    let user = state
        .accounts
        .verify_otp(&email(&body.email)?, &code)
        .await?;
    Ok(ok(UserBody::from(&user)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginBody {
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub user: UserBody,
}

fn auth_cookie(state: &AppState, token: String, age: CookieAge) -> Cookie<'static> {
    Cookie::build(AUTH_COOKIE, token)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .path("/")
        .max_age(age)
        .finish()
}

#[utoipa::path(
    post,
    path = "/authentication/login",
    tag = "authentication",
    request_body = CredentialsRequest,
    responses((status = 200, description = "Success", body = Envelope<LoginBody>), (status = 400, description = "Bad input; `errors[0].field` names the field", body = ErrorBody), (status = 413, description = "Body over 64 KiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 401, description = "Missing or invalid credentials", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 429, description = "Throttled; `data.retry_after_secs` says when to retry", body = ErrorBody), (status = 503, description = "A dependency is unavailable, or too many password checks at once (then with `Retry-After` and `data.retry_after_secs`); retry later", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying; sent when password hashing is saturated")))),
    description = "Log in: sets the HttpOnly cookie `smap_auth_token` and returns the token."
)]
#[post("/authentication/login")]
pub async fn login(
    state: web::Data<AppState>,
    body: JsonBody<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    let (user, session) = state
        .accounts
        .login(&email(&body.email)?, &password("password", &body.password)?)
        .await?;
    signed_in(&state, &user, &session, |token, expires_at| LoginBody {
        token,
        expires_at,
        user: UserBody::from(&user),
    })
}

/// An answer that carries a session's token in the body (built by `body`)
/// and in the auth cookie.
fn signed_in<T: Serialize>(
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

#[utoipa::path(
    post,
    path = "/authentication/logout",
    tag = "authentication",
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), (status = 401, description = "Missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])),
    description = "Log out: ends the session (its token is refused from now on, as cookie or bearer, on every replica) and clears the auth cookie; logging out of an already ended session succeeds."
)]
#[post("/authentication/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // A valid token is enough: logging out of an ended session (a retry
    // after a lost answer) succeeds and clears the cookie again.
    let claims = token_claims(&req)?.ok_or_else(|| {
        ApiError::unauthenticated("sign in first: no auth cookie or bearer token")
    })?;
    state.accounts.logout(claims.jti).await?;
    let mut response = ok(serde_json::json!({ "logged_out": true }));
    response
        .add_cookie(&auth_cookie(&state, String::new(), CookieAge::ZERO))
        .map_err(ApiError::internal)?;
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/authentication/me",
    tag = "authentication",
    responses((status = 200, description = "Success", body = Envelope<UserBody>), (status = 401, description = "Missing or invalid credentials", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])),
    description = "The signed-in user."
)]
#[get("/authentication/me")]
pub async fn auth_me(user: CurrentUser) -> HttpResponse {
    signed_in_user(&user)
}

/// `/authentication/me` and `/users/me` (DESIGN names both) answer alike.
fn signed_in_user(user: &CurrentUser) -> HttpResponse {
    ok(UserBody::from(&user.user))
}

#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    responses((status = 200, description = "Success", body = Envelope<UserBody>), (status = 401, description = "Missing or invalid credentials", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])),
    description = "The signed-in user."
)]
#[get("/users/me")]
pub async fn users_me(user: CurrentUser) -> HttpResponse {
    signed_in_user(&user)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ProfileRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$", example = "Nguyễn An")]
    pub full_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(en|vi)$", example = "vi")]
    pub locale: Option<String>,
}

#[utoipa::path(
    put,
    path = "/users/me",
    tag = "users",
    request_body = ProfileRequest,
    responses((status = 200, description = "Success", body = Envelope<UserBody>), (status = 400, description = "Bad input; `errors[0].field` names the field", body = ErrorBody), (status = 413, description = "Body over 64 KiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 401, description = "Missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])),
    description = "Update one's profile."
)]
#[put("/users/me")]
pub async fn update_me(
    user: CurrentUser,
    state: web::Data<AppState>,
    body: JsonBody<ProfileRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    let full_name = body
        .full_name
        .as_deref()
        .map(FullName::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("full_name", e))?;
    let locale = body
        .locale
        .as_deref()
        .map(|l| locale(l, "locale"))
        .transpose()?;
    let user = state
        .accounts
        .update_profile(user.user.id, full_name, locale)
        .await?;
    Ok(ok(UserBody::from(&user)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub new_password: String,
}

#[utoipa::path(
    post,
    path = "/users/me/change-password",
    tag = "users",
    request_body = ChangePasswordRequest,
    responses((status = 200, description = "Success: `{changed, token, expires_at}` and a new auth cookie", body = Envelope<serde_json::Value>), (status = 400, description = "Bad input; `errors[0].field` names the field (`current_password` when wrong)", body = ErrorBody), (status = 413, description = "Body over 64 KiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 401, description = "Missing or invalid credentials", body = ErrorBody), (status = 409, description = "A concurrent password change won", body = ErrorBody), (status = 503, description = "A dependency is unavailable, or too many password checks at once (then with `Retry-After` and `data.retry_after_secs`); retry later", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying; sent when password hashing is saturated"))), (status = 429, description = "Password checks locked; `data.retry_after_secs` says when to retry", body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])),
    description = "Change one's password: counts toward the account's password-check limit; ends every session of the account and answers a new one (token in the body and the cookie)."
)]
#[post("/users/me/change-password")]
pub async fn change_password(
    user: CurrentUser,
    state: web::Data<AppState>,
    body: JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    let current = password("current_password", &body.current_password)?;
    let new = password("new_password", &body.new_password)?;
    let session = state
        .accounts
        .change_password(user.user.id, &current, &new)
        .await?;
    signed_in(
        &state,
        &user.user,
        &session,
        |token, expires_at| serde_json::json!({ "changed": true, "token": token, "expires_at": expires_at }),
    )
}

/// The caller, if the store says they are an admin now (the role was read
/// with the session on this request; a token's role may be stale).
pub fn require_admin(user: &CurrentUser) -> Result<&User, ApiError> {
    if user.user.role == Role::Admin {
        Ok(&user.user)
    } else {
        Err(ApiError::forbidden("admins only"))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[serde(default)]
    #[param(minimum = 0, maximum = 9223372036854775807_u64)]
    pub offset: Option<u64>,
    /// 1-200, default 50.
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(Page),
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), (status = 400, description = "Bad input; `errors[0].field` names the field", body = ErrorBody), (status = 401, description = "Missing or invalid credentials", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])),
    description = "List users, newest first (admins)."
)]
#[get("/users")]
pub async fn list_users(
    user: CurrentUser,
    state: web::Data<AppState>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user)?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be 1-200"));
    }
    let offset = page.offset.unwrap_or(0);
    // Offsets are SQL bigints: what a signed 64-bit integer holds.
    if i64::try_from(offset).is_err() {
        return Err(ApiError::invalid_field(
            "offset",
            format!("must be 0-{}", i64::MAX),
        ));
    }
    let (users, total) = state.accounts.list_users(offset, limit).await?;
    let items: Vec<UserBody> = users.iter().map(UserBody::from).collect();
    Ok(ok(
        serde_json::json!({ "items": items, "total": total, "offset": offset, "limit": limit }),
    ))
}

pub fn uuid_param(raw: &str, field: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid_field(field, "must be a UUID"))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<UserBody>), (status = 400, description = "Bad input; `errors[0].field` names the field", body = ErrorBody), (status = 401, description = "Missing or invalid credentials", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])),
    description = "Read a user (admins)."
)]
#[get("/users/{id}")]
pub async fn get_user(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user)?;
    let found = state.accounts.user(uuid_param(&id, "id")?).await?;
    Ok(ok(UserBody::from(&found)))
}
