//! Authentication and user routes (DESIGN §6): register, OTP, login,
//! logout, the current user, profile and password, and the admin views.

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
    extract::{CurrentUser, JsonBody},
    response::{ApiError, ok, respond},
    state::AppState,
};
use crate::{
    app::auth::{AUTH_COOKIE, TOKEN_TTL_HOURS},
    domain::{
        account::{FullName, Password, Registration, Role, User},
        email::Email,
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

fn locale(raw: &str, field: &'static str) -> Result<Locale, ApiError> {
    raw.trim()
        .parse()
        .map_err(|e| ApiError::invalid_field(field, e))
}

#[derive(Debug, Serialize)]
pub struct UserBody {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub locale: Locale,
    pub role: Role,
    pub status: &'static str,
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

#[derive(Debug, Deserialize)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
}

/// Publishes `email.verification.requested` in the registration's transaction.
#[post("/authentication/register")]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    // The body's locale, else the `lang` header, else English.
    let locale = match (&body.locale, req.headers().get("lang")) {
        (Some(raw), _) => locale(raw, "locale")?,
        (None, Some(header)) => locale(header.to_str().unwrap_or_default(), "lang")?,
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

#[derive(Debug, Deserialize)]
pub struct CredentialsRequest {
    pub email: String,
    pub password: String,
}

/// Publishes `email.verification.requested` again.
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

#[derive(Debug, Deserialize)]
pub struct VerifyRequest {
    pub email: String,
    pub otp: String,
}

/// Publishes `subscription.created` (the 14-day trial).
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

#[derive(Debug, Serialize)]
struct LoginBody {
    token: String,
    expires_at: Timestamp,
    user: UserBody,
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

#[post("/authentication/login")]
pub async fn login(
    state: web::Data<AppState>,
    body: JsonBody<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    let user = state
        .accounts
        .login(&email(&body.email)?, &password("password", &body.password)?)
        .await?;
    let now = state.clock.now();
    let token = state
        .tokens
        .issue(user.id, user.role, now)
        .map_err(ApiError::internal)?;
    let cookie = auth_cookie(&state, token.clone(), CookieAge::hours(TOKEN_TTL_HOURS));
    let mut response = ok(LoginBody {
        token,
        expires_at: Timestamp::new(now + chrono::Duration::hours(TOKEN_TTL_HOURS)),
        user: UserBody::from(&user),
    });
    response.add_cookie(&cookie).map_err(ApiError::internal)?;
    Ok(response)
}

#[post("/authentication/logout")]
pub async fn logout(
    _user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut response = ok(serde_json::json!({ "logged_out": true }));
    response
        .add_cookie(&auth_cookie(&state, String::new(), CookieAge::ZERO))
        .map_err(ApiError::internal)?;
    Ok(response)
}

#[get("/authentication/me")]
pub async fn auth_me(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = state.accounts.user(user.0.sub).await?;
    Ok(ok(UserBody::from(&user)))
}

#[get("/users/me")]
pub async fn users_me(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = state.accounts.user(user.0.sub).await?;
    Ok(ok(UserBody::from(&user)))
}

#[derive(Debug, Deserialize)]
pub struct ProfileRequest {
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
}

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
        .update_profile(user.0.sub, full_name, locale)
        .await?;
    Ok(ok(UserBody::from(&user)))
}

#[derive(Debug, Deserialize)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[post("/users/me/change-password")]
pub async fn change_password(
    user: CurrentUser,
    state: web::Data<AppState>,
    body: JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body) = body;
    let current = password("current_password", &body.current_password)?;
    let new = password("new_password", &body.new_password)?;
    state
        .accounts
        .change_password(user.0.sub, &current, &new)
        .await?;
    Ok(ok(serde_json::json!({ "changed": true })))
}

/// The caller, if the store says they are an admin now (a token's role may
/// be stale after a change).
pub async fn require_admin(user: &CurrentUser, state: &AppState) -> Result<User, ApiError> {
    let me = state
        .accounts
        .user(user.0.sub)
        .await
        .map_err(|_| ApiError::forbidden("admins only"))?;
    if me.role == Role::Admin {
        Ok(me)
    } else {
        Err(ApiError::forbidden("admins only"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[get("/users")]
pub async fn list_users(
    user: CurrentUser,
    state: web::Data<AppState>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user, &state).await?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be 1-200"));
    }
    let offset = page.offset.unwrap_or(0);
    let (users, total) = state.accounts.list_users(offset, limit).await?;
    let items: Vec<UserBody> = users.iter().map(UserBody::from).collect();
    Ok(ok(
        serde_json::json!({ "items": items, "total": total, "offset": offset, "limit": limit }),
    ))
}

pub fn uuid_param(raw: &str, field: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid_field(field, "must be a UUID"))
}

#[get("/users/{id}")]
pub async fn get_user(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user, &state).await?;
    let found = state
        .accounts
        .user_for_admin(uuid_param(&id, "id")?)
        .await?;
    Ok(ok(UserBody::from(&found)))
}
