//! Project progress (DESIGN §5): the vocabulary, and the use cases that drive
//! a project to its exactly-once finish line.

mod completion;
mod get_progress;
mod init;
mod mark_item_done;
mod relay;
mod service;
mod set_total;
mod types;

pub use completion::{
    COMPLETION_LEASE, ClaimedCompletion, Completion, CompletionRecord, CompletionStamp,
    DueCompletions, ItemReport, ReportKey,
};
pub use relay::RelayReport;
pub use service::{ProgressService, ProgressUseCaseError};
pub use types::{
    ItemId, ItemIdError, ItemOutcome, ItemUpdate, MAX_TOTAL, PROGRESS_TTL_SECONDS, Progress,
    ProgressView, ProjectId, ProjectIdError, ProjectStatus, ProjectStatusError, TotalUpdate,
};

#[cfg(test)]
mod tests;
