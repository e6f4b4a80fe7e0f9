//! Admin views of users: the list and one user.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;

use super::{UserBody, uuid_param};
use crate::{
    app::http::{
        error_responses::{BadInput, Forbidden, NotFound, Unauthenticated},
        extract::CurrentUser,
        response::{ApiError, Envelope, ok},
        state::AppState,
    },
    domain::account::{Role, User},
};

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
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), BadInput, Unauthenticated, Forbidden),
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

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<UserBody>), BadInput, Unauthenticated, Forbidden, NotFound),
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
