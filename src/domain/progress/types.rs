//! Progress values: project and item ids, statuses, counters and percentages.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use super::CompletionRecord;
use crate::domain::serde_str::serde_via_parse;

/// Progress records live 7 days after their last write (DESIGN §5).
pub const PROGRESS_TTL_SECONDS: i64 = 604_800;

/// Largest `total` a project may have: counters must stay exact in Lua
/// (IEEE doubles) and in JavaScript clients, so 2^53 - 1.
pub const MAX_TOTAL: u64 = (1 << 53) - 1;

const MAX_PROJECT_ID_LEN: usize = 64;
const MAX_ITEM_ID_LEN: usize = 256;

/// The text is empty, over 64 bytes, or holds a character other than ASCII
/// letters, digits, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-{MAX_PROJECT_ID_LEN} characters of `A-Z`, `a-z`, `0-9`, `_`, `-`")]
pub struct ProjectIdError;

/// An opaque project id issued by the Project service.
///
/// Always 1-64 characters of `A-Z a-z 0-9 _ -`: safe inside a Redis key
/// (`smap:proj:{id}`), a URL path and a log line without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);

impl ProjectId {
    /// Accepts the id as given (case kept, not trimmed); anything outside
    /// the alphabet or the length is [`ProjectIdError`].
    pub fn parse(input: &str) -> Result<Self, ProjectIdError> {
        let ok = !input.is_empty()
            && input.len() <= MAX_PROJECT_ID_LEN
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(ProjectIdError)
        }
    }

    /// The id as parsed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_parse!(ProjectId);

/// The text is empty, over 256 characters, or holds a control character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-{MAX_ITEM_ID_LEN} characters with no control characters")]
pub struct ItemIdError;

/// The id of one unit of work inside a project (a crawled post, say); lets a
/// redelivered item be counted once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemId(String);

impl ItemId {
    /// Accepts 1-256 characters (not bytes) without control characters, as
    /// given; otherwise [`ItemIdError`].
    pub fn parse(input: &str) -> Result<Self, ItemIdError> {
        // Characters, not bytes: the limit the OpenAPI schema can state.
        let ok = !input.is_empty()
            && input.chars().count() <= MAX_ITEM_ID_LEN
            && !input.chars().any(char::is_control);
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(ItemIdError)
        }
    }

    /// The id as parsed: what the store adds to the project's item set.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

serde_via_parse!(ItemId);

/// Where a project is in the Project → Collector → Analytics pipeline.
///
/// On the wire and in Redis: `INITIALIZING`, `CRAWLING`, `PROCESSING_WAIT`,
/// `PROCESSING`, `DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProjectStatus {
    /// Tracked, nothing reported yet; what `init` sets.
    Initializing,
    /// The collector is still discovering items: the finish line is closed
    /// whatever the counters say.
    Crawling,
    /// Discovery is over and `total` is final; waiting for the last items.
    ProcessingWait,
    /// Items are being processed.
    Processing,
    /// The finish line was crossed; only the finish line sets it, once.
    Done,
}

/// The text is not one of the five statuses, spelled exactly (upper case).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of INITIALIZING, CRAWLING, PROCESSING_WAIT, PROCESSING, DONE")]
pub struct ProjectStatusError;

impl ProjectStatus {
    /// Every status, in pipeline order.
    pub const ALL: [ProjectStatus; 5] = [
        Self::Initializing,
        Self::Crawling,
        Self::ProcessingWait,
        Self::Processing,
        Self::Done,
    ];

    /// The wire form, `SCREAMING_SNAKE_CASE`; what [`FromStr`] reads back.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "INITIALIZING",
            Self::Crawling => "CRAWLING",
            Self::ProcessingWait => "PROCESSING_WAIT",
            Self::Processing => "PROCESSING",
            Self::Done => "DONE",
        }
    }

    /// The finish line may close a project in this status: not while the
    /// collector is still discovering items, and not twice.
    pub fn may_complete(self) -> bool {
        !matches!(self, Self::Crawling | Self::Done)
    }
}

impl FromStr for ProjectStatus {
    type Err = ProjectStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(ProjectStatusError)
    }
}

impl fmt::Display for ProjectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counters of one project, as stored.
///
/// `done` may pass `total` (items reported after the finish line, or before
/// the total was set); the store keeps `errors <= done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Where the project is; `DONE` only after the finish line.
    pub status: ProjectStatus,
    /// Items the collector announced; 0 until it says, at most [`MAX_TOTAL`].
    pub total: u64,
    /// Items reported, failed ones included; each item id counted once.
    pub done: u64,
    /// Items among `done` that failed.
    pub errors: u64,
}

impl Progress {
    /// What `init` stores: `INITIALIZING` with every counter at 0.
    pub fn initial() -> Self {
        Self {
            status: ProjectStatus::Initializing,
            total: 0,
            done: 0,
            errors: 0,
        }
    }

    /// The finish line of DESIGN §5: `total > 0`, `done >= total`, and a
    /// status that [`ProjectStatus::may_complete`].
    pub fn reached_finish_line(&self) -> bool {
        self.total > 0 && self.done >= self.total && self.status.may_complete()
    }

    /// `done / total * 100` with two decimals, 0 when total is 0, capped at 100
    /// (late items may push `done` past `total`).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let raw = self.done as f64 / self.total as f64 * 100.0;
        (raw.min(100.0) * 100.0).round() / 100.0
    }
}

/// What `get_progress` answers: a missing project is `NOT_FOUND`, never created.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProgressView {
    /// The project's stored counters.
    Found(Progress),
    /// No record: never initialised, or expired 7 days after its last write.
    NotFound,
}

/// What `mark_item_done` tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemOutcome {
    /// The project is not finished, or another report finished it.
    Processing,
    /// This report crossed the finish line: exactly one report per project
    /// sees this, and sees it again whenever it is retried (same item id, or
    /// the same call replayed), so a lost answer is never a lost completion.
    Completed,
}

/// What `mark_item_done` answers: the outcome, and the state after the
/// report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemUpdate {
    /// `Completed` for the one report that crossed the finish line (and its
    /// retries), `Processing` for every other.
    pub outcome: ItemOutcome,
    /// The item id had been counted before (by another report, or by an
    /// earlier try of this one whose answer was lost): nothing changed.
    pub duplicate: bool,
    /// The counters after this report (unchanged when `duplicate`).
    pub progress: Progress,
    /// The recorded completion: `Some` exactly when `outcome` is `Completed`.
    pub completion: Option<CompletionRecord>,
}

/// What `set_total` answers: whether it completed the project, and the
/// state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalUpdate {
    /// Setting the total crossed the finish line (the late `PROCESSING_WAIT`),
    /// in this try or in an earlier try of the same request.
    pub completed: bool,
    /// The counters after the write: the new total and status (or `DONE`).
    pub progress: Progress,
    /// The recorded completion: `Some` exactly when `completed`.
    pub completion: Option<CompletionRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_are_short_opaque_slugs() {
        for good in ["p1", "PRJ_2026-11", &"x".repeat(64)] {
            assert!(ProjectId::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "a/b", "proj:1", "é", &"x".repeat(65)] {
            assert_eq!(ProjectId::parse(bad), Err(ProjectIdError), "{bad:?}");
        }
    }

    #[test]
    fn item_ids_reject_empty_long_and_control_characters() {
        assert!(ItemId::parse("post:123/abc").is_ok());
        assert!(ItemId::parse("").is_err());
        assert!(ItemId::parse("a\nb").is_err());
        assert!(ItemId::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn percent_has_two_decimals_and_is_zero_without_total() {
        let mut p = Progress::initial();
        assert_eq!(p.percent(), 0.0);
        p.total = 3;
        p.done = 1;
        assert_eq!(p.percent(), 33.33);
        p.done = 2;
        assert_eq!(p.percent(), 66.67);
        p.done = 5;
        assert_eq!(p.percent(), 100.0);
    }

    #[test]
    fn finish_line_needs_a_total_all_items_and_a_closable_status() {
        let p = |status, total, done| Progress {
            status,
            total,
            done,
            errors: 0,
        };
        assert!(p(ProjectStatus::Processing, 2, 2).reached_finish_line());
        assert!(p(ProjectStatus::ProcessingWait, 2, 3).reached_finish_line());
        assert!(p(ProjectStatus::Initializing, 2, 2).reached_finish_line());
        assert!(!p(ProjectStatus::Processing, 2, 1).reached_finish_line());
        assert!(!p(ProjectStatus::Processing, 0, 0).reached_finish_line());
        assert!(!p(ProjectStatus::Crawling, 2, 2).reached_finish_line());
        assert!(!p(ProjectStatus::Done, 2, 2).reached_finish_line());
    }

    #[test]
    fn statuses_use_screaming_snake_case_on_the_wire() {
        for status in ProjectStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
    }
}
