//! `PUT /internal/projects/{id}/progress`: set total and status together.

use actix_web::{HttpResponse, put, web};

use super::{ProgressBody, SetTotalBody, SetTotalRequest, project_id};
use crate::app::http::{
    extract::{InternalCaller, JsonBody},
    response::{ApiError, ok},
    state::AppState,
};

#[put("/internal/projects/{id}/progress")]
pub async fn set_project_total(
    _caller: InternalCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody<SetTotalRequest>,
) -> Result<HttpResponse, ApiError> {
    let project = project_id(&id)?;
    let JsonBody(request) = body;
    let update = state
        .progress
        .set_total(&project, request.total, request.status)
        .await?;
    Ok(ok(SetTotalBody {
        progress: ProgressBody::from(update.progress),
        completed: update.completed,
    }))
}
