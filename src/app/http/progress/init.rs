//! `POST /internal/projects/{id}/progress`: start tracking a project.

use crate::app::http::error_responses::{BadInput, Forbidden, Unauthenticated, Unavailable};
use crate::app::http::response::Envelope;
use actix_web::{HttpResponse, http::StatusCode, post, web};

use super::{ProgressBody, project_id};
use crate::app::http::{
    extract::InternalCaller,
    response::{ApiError, respond},
    state::AppState,
};

#[utoipa::path(
    post,
    path = "/internal/projects/{id}/progress",
    tag = "internal",
    params(("id" = String, Path, description = "Project id: 1-64 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 201, description = "Success", body = Envelope<ProgressBody>), BadInput, Unauthenticated, Forbidden, Unavailable),
    security(("internal_key" = [])),
    description = "Start tracking a project (replaces an earlier record)."
)]
#[post("/internal/projects/{id}/progress")]
pub async fn init_progress(
    _caller: InternalCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project = project_id(&id)?;
    let progress = state.progress.init_project(&project).await?;
    Ok(respond(StatusCode::CREATED, ProgressBody::from(progress)))
}
