//! `/authentication/*`: register, (re)send and verify the OTP, log in and
//! out, and the signed-in user.

use actix_web::{
    HttpRequest, HttpResponse, cookie::time::Duration as CookieAge, get, http::StatusCode, post,
    web,
};
use serde::{Deserialize, Serialize};

use super::{
    LANG_HEADER, UserBody, auth_cookie, email, email_schema, full_name_schema, locale, password,
    signed_in, signed_in_user,
};
use crate::{
    app::http::{
        error_responses::{
            BadJsonBody, Conflict, Forbidden, NotFound, PasswordCheckUnavailable, Throttled,
            Unauthenticated, Unavailable,
        },
        extract::{CurrentUser, JsonBody, token_claims},
        response::{ApiError, Envelope, ok, respond},
        state::AppState,
    },
    domain::{
        account::{FullName, Registration},
        locale::Locale,
        otp::OtpCode,
        timestamp::Timestamp,
    },
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    #[schema(schema_with = email_schema)]
    pub email: String,
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub password: String,
    #[serde(default)]
    #[schema(schema_with = full_name_schema)]
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
    responses((status = 201, description = "Success", body = Envelope<UserBody>), BadJsonBody, Conflict, PasswordCheckUnavailable),
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
    #[schema(schema_with = email_schema)]
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
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), BadJsonBody, Unauthenticated, Conflict, Throttled, PasswordCheckUnavailable),
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
    #[schema(schema_with = email_schema)]
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
    responses((status = 200, description = "Success", body = Envelope<UserBody>), BadJsonBody, Conflict, Throttled, Unavailable),
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

#[utoipa::path(
    post,
    path = "/authentication/login",
    tag = "authentication",
    request_body = CredentialsRequest,
    responses((status = 200, description = "Success", body = Envelope<LoginBody>), BadJsonBody, Unauthenticated, Forbidden, Throttled, PasswordCheckUnavailable),
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

#[utoipa::path(
    post,
    path = "/authentication/logout",
    tag = "authentication",
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), Unauthenticated),
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
    responses((status = 200, description = "Success", body = Envelope<UserBody>), Unauthenticated, NotFound),
    security(("bearer" = []), ("cookie" = [])),
    description = "The signed-in user."
)]
#[get("/authentication/me")]
pub async fn auth_me(user: CurrentUser) -> HttpResponse {
    signed_in_user(&user)
}
