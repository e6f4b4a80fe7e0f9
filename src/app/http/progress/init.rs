//! `POST /internal/projects/{id}/progress`: start tracking a project.

use actix_web::{HttpResponse, http::StatusCode, post, web};

use super::{ProgressBody, project_id};
use crate::app::http::{
    extract::InternalCaller,
    response::{ApiError, respond},
    state::AppState,
};

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
