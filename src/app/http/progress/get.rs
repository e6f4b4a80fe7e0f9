//! `GET /projects/{id}/progress`: `{status, total, done, errors, percent}`;
//! an unknown project is a 404 whose data says `NOT_FOUND`, and is not created.

use crate::app::http::error_responses::{
    BadInput, Forbidden, NotFound, Unauthenticated, Unavailable,
};
use crate::app::http::response::Envelope;
use actix_web::{HttpResponse, get, web};

use super::{ProgressBody, project_id};
use crate::{
    app::http::{
        extract::ProgressReader,
        response::{ApiError, ok},
        state::AppState,
    },
    domain::progress::ProgressView,
};

#[utoipa::path(
    get,
    path = "/projects/{id}/progress",
    tag = "progress",
    params(("id" = String, Path, description = "Project id: 1-64 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, description = "Success", body = Envelope<ProgressBody>), BadInput, Unauthenticated, Forbidden, NotFound, Unavailable),
    security(("bearer" = []), ("cookie" = []), ("internal_key" = [])),
    description = "A project's progress; 404 with status NOT_FOUND for an unknown project."
)]
#[get("/projects/{id}/progress")]
pub async fn get_progress(
    _reader: ProgressReader,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project = project_id(&id)?;
    match state.progress.get_progress(&project).await? {
        ProgressView::Found(progress) => Ok(ok(ProgressBody::from(progress))),
        ProgressView::NotFound => Err(ApiError::not_found(format!(
            "no progress for project `{project}`"
        ))
        .with_data(ProgressBody::not_found())),
    }
}
