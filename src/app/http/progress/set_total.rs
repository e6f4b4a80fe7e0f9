//! `PUT /internal/projects/{id}/progress`: set total and status together.

use crate::app::http::error_responses::{
    BadJsonBody, Conflict, Forbidden, NotFound, RuleViolated, Unauthenticated, Unavailable,
};
use crate::app::http::response::Envelope;
use actix_web::{HttpResponse, put, web};

use super::{ProgressBody, SetTotalBody, SetTotalRequest, project_id};
use crate::app::http::{
    extract::{InternalCaller, JsonBody},
    response::{ApiError, ok},
    state::AppState,
};

#[utoipa::path(
    put,
    path = "/internal/projects/{id}/progress",
    tag = "internal",
    request_body = SetTotalRequest,
    params(("id" = String, Path, description = "Project id: 1-64 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, description = "Success", body = Envelope<SetTotalBody>), BadJsonBody, Unauthenticated, Forbidden, NotFound, Conflict, RuleViolated, Unavailable),
    security(("internal_key" = [])),
    description = "Set total and status; may complete the project (recording and publishing `job.completed`). On a DONE project 409, except for the same total and status that completed it: 200 completed again."
)]
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
