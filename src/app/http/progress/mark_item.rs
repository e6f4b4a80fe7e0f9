//! `POST /internal/projects/{id}/progress/items`: one item done (or failed).

use crate::app::http::error_responses::{
    BadJsonBody, Forbidden, NotFound, Unauthenticated, Unavailable,
};
use crate::app::http::response::Envelope;
use actix_web::{HttpResponse, post, web};

use super::{MarkItemBody, MarkItemRequest, project_id};
use crate::app::http::{
    extract::{InternalCaller, JsonBody},
    response::{ApiError, ok},
    state::AppState,
};

#[utoipa::path(
    post,
    path = "/internal/projects/{id}/progress/items",
    tag = "internal",
    request_body = MarkItemRequest,
    params(("id" = String, Path, description = "Project id: 1-64 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, description = "Success", body = Envelope<MarkItemBody>), BadJsonBody, Unauthenticated, Forbidden, NotFound, Unavailable),
    security(("internal_key" = [])),
    description = "One item done; exactly one report gets COMPLETED — again when retried with the same item_id — and `job.completed` is recorded with it and published once, even if the broker is down at that moment."
)]
#[post("/internal/projects/{id}/progress/items")]
pub async fn mark_item_done(
    _caller: InternalCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody<MarkItemRequest>,
) -> Result<HttpResponse, ApiError> {
    let project = project_id(&id)?;
    let JsonBody(request) = body;
    let update = state
        .progress
        .mark_item_done(&project, request.is_error, request.item_id.as_ref())
        .await?;
    Ok(ok(MarkItemBody {
        status: update.outcome,
        done: update.progress.done,
        total: update.progress.total,
        errors: update.progress.errors,
        duplicate: update.duplicate,
    }))
}
