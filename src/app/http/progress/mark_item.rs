//! `POST /internal/projects/{id}/progress/items`: one item done (or failed).

use actix_web::{HttpResponse, post, web};

use super::{MarkItemBody, MarkItemRequest, project_id};
use crate::app::http::{
    extract::{InternalCaller, JsonBody},
    response::{ApiError, ok},
    state::AppState,
};

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
