//! `GET /projects/{id}/progress`: `{status, total, done, errors, percent}`;
//! an unknown project is a 404 whose data says `NOT_FOUND`, and is not created.

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
