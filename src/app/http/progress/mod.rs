//! Project progress routes (DESIGN §6): request and response types, and how
//! use-case errors map to HTTP. One handler per file beside this one.

mod get;
mod init;
mod mark_item;
mod set_total;

pub use get::get_progress;
pub use init::init_progress;
pub use mark_item::mark_item_done;
pub use set_total::set_project_total;

// utoipa's path descriptions, re-exported for the OpenAPI document.
pub use get::__path_get_progress;
pub use init::__path_init_progress;
pub use mark_item::__path_mark_item_done;
pub use set_total::__path_set_project_total;

use serde::{Deserialize, Serialize};

use super::response::ApiError;
use crate::{
    domain::progress::{
        ItemId, ItemOutcome, Progress, ProgressUseCaseError, ProjectId, ProjectStatus,
    },
    ports::ProgressError,
};

/// The `{id}` of the path, parsed.
fn project_id(raw: &str) -> Result<ProjectId, ApiError> {
    ProjectId::parse(raw).map_err(|e| ApiError::invalid_field("project_id", e))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProgressBody {
    pub status: &'static str,
    pub total: u64,
    pub done: u64,
    pub errors: u64,
    pub percent: f64,
}

impl From<Progress> for ProgressBody {
    fn from(p: Progress) -> Self {
        Self {
            status: p.status.as_str(),
            total: p.total,
            done: p.done,
            errors: p.errors,
            percent: p.percent(),
        }
    }
}

impl ProgressBody {
    pub fn not_found() -> Self {
        Self {
            status: "NOT_FOUND",
            total: 0,
            done: 0,
            errors: 0,
            percent: 0.0,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SetTotalRequest {
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub total: u64,
    /// `DONE` is the finish line's to set (422 when sent).
    #[schema(value_type = String, pattern = "^(INITIALIZING|CRAWLING|PROCESSING_WAIT|PROCESSING)$", example = "PROCESSING_WAIT")]
    pub status: ProjectStatus,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SetTotalBody {
    #[serde(flatten)]
    pub progress: ProgressBody,
    /// This request completed the project (now, or in an earlier try with the
    /// same total and status): `job.completed` is recorded and follows.
    pub completed: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MarkItemRequest {
    pub is_error: bool,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 256, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$", example = "post-123")]
    pub item_id: Option<ItemId>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MarkItemBody {
    #[schema(value_type = String, example = "PROCESSING")]
    pub status: ItemOutcome,
    pub done: u64,
    pub total: u64,
    pub errors: u64,
    /// The item id had been counted before (by another report, or an earlier
    /// try of this one): nothing changed. The retry of the report that
    /// completed the project is `COMPLETED` and `duplicate`.
    pub duplicate: bool,
}

impl From<ProgressUseCaseError> for ApiError {
    fn from(error: ProgressUseCaseError) -> Self {
        match error {
            ProgressUseCaseError::DoneNotSettable => ApiError::rule_violated("status", &error),
            ProgressUseCaseError::TotalTooLarge { .. } => ApiError::rule_violated("total", &error),
            ProgressUseCaseError::Store(ProgressError::NotFound(ref project)) => {
                ApiError::not_found(format!(
                    "project `{project}` has no progress record: initialize it first"
                ))
                .with_data(ProgressBody::not_found())
            }
            ProgressUseCaseError::Store(ProgressError::AlreadyDone(_)) => {
                ApiError::conflict(error.to_string())
            }
            ProgressUseCaseError::Store(ProgressError::Unavailable(_)) => {
                ApiError::unavailable("progress store unavailable, retry later", error)
            }
            ProgressUseCaseError::Store(ProgressError::Unexpected(_)) => ApiError::internal(error),
        }
    }
}
