//! Reading the scripts' answers and the stored completion records back
//! into domain values, and the stamp arguments the scripts are given.

use serde::Deserialize;

use crate::{
    domain::{
        events::EventId,
        progress::{
            ClaimedCompletion, Completion, CompletionRecord, CompletionStamp, Progress, ProjectId,
            ProjectStatus,
        },
        timestamp::Timestamp,
    },
    ports::ProgressError,
};

/// {result, status, total, done, errors, duplicate, completed, event_id,
/// completed_at, published, claimed_record}.
pub(super) type FinishLineReply = (
    String,
    String,
    u64,
    u64,
    u64,
    u64,
    u64,
    String,
    String,
    u64,
    String,
);

/// The event's data as `complete` writes it in the records hash.
#[derive(Deserialize)]
struct StoredCompletion {
    project_id: String,
    total: u64,
    done: u64,
    errors: u64,
    completed_at: String,
}

pub(super) fn status(raw: &str) -> Result<ProjectStatus, ProgressError> {
    raw.parse()
        .map_err(|e| ProgressError::Unexpected(anyhow::anyhow!("stored status `{raw}`: {e}")))
}

pub(super) fn unexpected(what: &str, e: impl std::fmt::Display) -> ProgressError {
    ProgressError::Unexpected(anyhow::anyhow!("stored {what}: {e}"))
}

pub(super) fn millis(at: Timestamp) -> String {
    at.as_datetime().timestamp_millis().to_string()
}

/// ARGV[4..8] of the finish-line scripts.
pub(super) fn stamp_args(project: &ProjectId, stamp: &CompletionStamp) -> [String; 5] {
    [
        stamp.event_id.to_string(),
        stamp.at.to_string(),
        millis(stamp.at),
        millis(stamp.claim_until()),
        project.to_string(),
    ]
}

pub(super) fn parse_completion(event_id: &str, record: &str) -> Result<Completion, ProgressError> {
    let stored: StoredCompletion =
        serde_json::from_str(record).map_err(|e| unexpected("completion", e))?;
    Ok(Completion {
        project: ProjectId::parse(&stored.project_id).map_err(|e| unexpected("project id", e))?,
        event_id: EventId::parse(event_id).map_err(|e| unexpected("event id", e))?,
        completed_at: Timestamp::parse(&stored.completed_at)
            .map_err(|e| unexpected("completed_at", e))?,
        total: stored.total,
        done: stored.done,
        errors: stored.errors,
    })
}

/// The completion part of a finish-line answer: `None` when nothing was
/// completed; the claim is this call's when a record came back.
pub(super) fn completion_of(
    reply: &FinishLineReply,
    stamp: &CompletionStamp,
) -> Result<Option<CompletionRecord>, ProgressError> {
    let (.., completed, event_id, completed_at, published, claimed) = reply;
    if *completed == 0 {
        return Ok(None);
    }
    let claimed = if claimed.is_empty() {
        None
    } else {
        Some(ClaimedCompletion {
            completion: parse_completion(event_id, claimed)?,
            until: stamp.claim_until(),
        })
    };
    Ok(Some(CompletionRecord {
        event_id: EventId::parse(event_id).map_err(|e| unexpected("event id", e))?,
        completed_at: Timestamp::parse(completed_at).map_err(|e| unexpected("completed_at", e))?,
        published: *published == 1,
        claimed,
    }))
}

pub(super) fn progress_of(reply: &FinishLineReply) -> Result<Progress, ProgressError> {
    let (_, stored, total, done, errors, ..) = reply;
    Ok(Progress {
        status: status(stored)?,
        total: *total,
        done: *done,
        errors: *errors,
    })
}
