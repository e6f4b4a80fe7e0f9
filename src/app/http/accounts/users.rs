//! `/users/me`: the signed-in user's own record, profile and password.

use actix_web::{HttpResponse, get, post, put, web};
use serde::Deserialize;

use super::{UserBody, full_name_schema, locale, password, signed_in, signed_in_user};
use crate::{
    app::http::{
        error_responses::{
            BadJsonBody, NotFound, PasswordCheckUnavailable, Unauthenticated, UnreadableBody,
        },
        extract::{CurrentUser, JsonBody},
        response::{ApiError, Envelope, ErrorBody, ok},
        state::AppState,
    },
    domain::account::FullName,
};

#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    responses((status = 200, description = "Success", body = Envelope<UserBody>), Unauthenticated, NotFound),
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
    #[schema(schema_with = full_name_schema)]
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
    responses((status = 200, description = "Success", body = Envelope<UserBody>), BadJsonBody, Unauthenticated),
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
    responses((status = 200, description = "Success: `{changed, token, expires_at}` and a new auth cookie", body = Envelope<serde_json::Value>), (status = 400, description = "Bad input; `errors[0].field` names the field (`current_password` when wrong)", body = ErrorBody), Unauthenticated, (status = 409, description = "A concurrent password change won", body = ErrorBody), PasswordCheckUnavailable, (status = 429, description = "Password checks locked; `data.retry_after_secs` says when to retry", body = ErrorBody), UnreadableBody),
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
