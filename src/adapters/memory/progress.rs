//! `InMemoryProgressStore`: project progress in process, with the same atomic
//! finish line, report de-duplication, completion record and claims, and
//! 7-day time to live as the Redis store. One mutex makes each operation a
//! single atomic step, as the Lua script does on Redis.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration as StdDuration,
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        events::EventId,
        progress::{
            ClaimedCompletion, Completion, CompletionRecord, CompletionStamp, DueCompletions,
            ItemId, ItemOutcome, ItemReport, ItemUpdate, PROGRESS_TTL_SECONDS, Progress, ProjectId,
            ProjectStatus, ReportKey, TotalUpdate,
        },
        timestamp::Timestamp,
    },
    ports::{Clock, ProgressError, ProgressStore},
};

/// Which write crossed the finish line, so its retries get the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CompletedBy {
    Report(ReportKey),
    Total(u64, ProjectStatus),
}

/// The completion as the project's record keeps it.
struct Recorded {
    event_id: EventId,
    completed_at: Timestamp,
    by: CompletedBy,
    published: bool,
}

struct Record {
    progress: Progress,
    items: HashSet<ItemId>,
    calls: HashSet<Uuid>,
    completion: Option<Recorded>,
    expires_at: DateTime<Utc>,
}

/// An unpublished completion and when its claim lapses. Kept apart from the
/// project's record, like Redis' `smap:proj:completions:*` keys, so neither
/// a new `init` nor the record's expiry loses the event.
struct Pending {
    completion: Completion,
    due: Timestamp,
}

#[derive(Default)]
struct State {
    records: HashMap<ProjectId, Record>,
    pending: HashMap<EventId, Pending>,
}

pub struct InMemoryProgressStore {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl InMemoryProgressStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live record of `project`, dropping it if its time to live ran out.
    fn live<'a>(
        records: &'a mut HashMap<ProjectId, Record>,
        project: &ProjectId,
        now: DateTime<Utc>,
    ) -> Option<&'a mut Record> {
        if records.get(project).is_some_and(|r| r.expires_at <= now) {
            records.remove(project);
        }
        records.get_mut(project)
    }

    /// Seconds left before `project` expires (for tests of the TTL refresh).
    pub fn ttl_seconds(&self, project: &ProjectId) -> Option<i64> {
        let now = self.clock.now();
        let mut state = self.lock();
        Self::live(&mut state.records, project, now).map(|r| (r.expires_at - now).num_seconds())
    }
}

fn ttl() -> Duration {
    Duration::seconds(PROGRESS_TTL_SECONDS)
}

/// Crosses the finish line: `DONE`, the completion recorded in the project
/// and pending publication, claimed by this write.
fn complete(
    project: &ProjectId,
    record: &mut Record,
    pending: &mut HashMap<EventId, Pending>,
    by: CompletedBy,
    stamp: &CompletionStamp,
) -> CompletionRecord {
    record.progress.status = ProjectStatus::Done;
    record.completion = Some(Recorded {
        event_id: stamp.event_id,
        completed_at: stamp.at,
        by,
        published: false,
    });
    let completion = Completion {
        project: project.clone(),
        event_id: stamp.event_id,
        completed_at: stamp.at,
        total: record.progress.total,
        done: record.progress.done,
        errors: record.progress.errors,
    };
    let until = stamp.claim_until();
    pending.insert(
        stamp.event_id,
        Pending {
            completion: completion.clone(),
            due: until,
        },
    );
    CompletionRecord {
        event_id: stamp.event_id,
        completed_at: stamp.at,
        published: false,
        claimed: Some(ClaimedCompletion { completion, until }),
    }
}

/// A retry of the write that crossed the line: the recorded completion, and
/// the claim if it is unpublished and its claim has lapsed — or is the one
/// this very call took.
fn recall(
    recorded: &Recorded,
    pending: &mut HashMap<EventId, Pending>,
    stamp: &CompletionStamp,
) -> CompletionRecord {
    // Lapsed or released; or still held by this very call (a replay of the
    // write that crossed the line: same event id, same claim).
    let replay = recorded.event_id == stamp.event_id;
    let claimed = pending
        .get_mut(&recorded.event_id)
        .filter(|p| p.due <= stamp.at || (replay && p.due == stamp.claim_until()))
        .map(|p| {
            p.due = stamp.claim_until();
            ClaimedCompletion {
                completion: p.completion.clone(),
                until: p.due,
            }
        });
    CompletionRecord {
        event_id: recorded.event_id,
        completed_at: recorded.completed_at,
        published: recorded.published,
        claimed,
    }
}

#[async_trait]
impl ProgressStore for InMemoryProgressStore {
    async fn init(&self, project: &ProjectId) -> Result<Progress, ProgressError> {
        let now = self.clock.now();
        let progress = Progress::initial();
        self.lock().records.insert(
            project.clone(),
            Record {
                progress,
                items: HashSet::new(),
                calls: HashSet::new(),
                completion: None,
                expires_at: now + ttl(),
            },
        );
        Ok(progress)
    }

    async fn set_total(
        &self,
        project: &ProjectId,
        total: u64,
        status: ProjectStatus,
        stamp: &CompletionStamp,
    ) -> Result<TotalUpdate, ProgressError> {
        let now = self.clock.now();
        let mut state = self.lock();
        let State { records, pending } = &mut *state;
        let record = Self::live(records, project, now)
            .ok_or_else(|| ProgressError::NotFound(project.clone()))?;
        let by = CompletedBy::Total(total, status);
        if record.progress.status == ProjectStatus::Done {
            return match &record.completion {
                Some(recorded) if recorded.by == by => {
                    record.expires_at = now + ttl();
                    Ok(TotalUpdate {
                        completed: true,
                        progress: record.progress,
                        completion: Some(recall(recorded, pending, stamp)),
                    })
                }
                _ => Err(ProgressError::AlreadyDone(project.clone())),
            };
        }
        record.progress.total = total;
        record.progress.status = status;
        record.expires_at = now + ttl();
        let completion = record
            .progress
            .reached_finish_line()
            .then(|| complete(project, record, pending, by, stamp));
        Ok(TotalUpdate {
            completed: completion.is_some(),
            progress: record.progress,
            completion,
        })
    }

    async fn mark_item_done(
        &self,
        project: &ProjectId,
        report: &ItemReport,
    ) -> Result<ItemUpdate, ProgressError> {
        let now = self.clock.now();
        let mut state = self.lock();
        let State { records, pending } = &mut *state;
        let record = Self::live(records, project, now)
            .ok_or_else(|| ProgressError::NotFound(project.clone()))?;
        record.expires_at = now + ttl();
        let first = match &report.key {
            ReportKey::Item(item) => record.items.insert(item.clone()),
            ReportKey::Call(token) => record.calls.insert(*token),
        };
        let by = CompletedBy::Report(report.key.clone());
        if !first {
            // Counted before: by this very report if it crossed the line.
            let completion = record
                .completion
                .as_ref()
                .filter(|recorded| recorded.by == by)
                .map(|recorded| recall(recorded, pending, &report.stamp));
            return Ok(ItemUpdate {
                outcome: if completion.is_some() {
                    ItemOutcome::Completed
                } else {
                    ItemOutcome::Processing
                },
                // A replayed call is the same report, not a second one.
                duplicate: matches!(report.key, ReportKey::Item(_)),
                progress: record.progress,
                completion,
            });
        }
        record.progress.done += 1;
        if report.is_error {
            record.progress.errors += 1;
        }
        let completion = record
            .progress
            .reached_finish_line()
            .then(|| complete(project, record, pending, by, &report.stamp));
        Ok(ItemUpdate {
            outcome: if completion.is_some() {
                ItemOutcome::Completed
            } else {
                ItemOutcome::Processing
            },
            duplicate: false,
            progress: record.progress,
            completion,
        })
    }

    async fn get_progress(&self, project: &ProjectId) -> Result<Option<Progress>, ProgressError> {
        let now = self.clock.now();
        let mut state = self.lock();
        Ok(Self::live(&mut state.records, project, now).map(|r| r.progress))
    }

    async fn claim_due_completions(
        &self,
        now: Timestamp,
        lease: StdDuration,
        limit: usize,
    ) -> Result<DueCompletions, ProgressError> {
        let until = CompletionStamp {
            event_id: EventId::from_uuid(Uuid::nil()),
            at: now,
            lease,
        }
        .claim_until();
        let mut state = self.lock();
        let mut due: Vec<&mut Pending> = state
            .pending
            .values_mut()
            .filter(|p| p.due <= now)
            .collect();
        // Oldest claim first, as Redis' sorted set hands them out.
        due.sort_by_key(|p| (p.due, p.completion.event_id));
        let claimed = due
            .into_iter()
            .take(limit)
            .map(|p| {
                p.due = until;
                ClaimedCompletion {
                    completion: p.completion.clone(),
                    until,
                }
            })
            .collect();
        Ok(DueCompletions {
            claimed,
            pending: state.pending.len() as u64,
        })
    }

    async fn mark_published(&self, completion: &Completion) -> Result<(), ProgressError> {
        let now = self.clock.now();
        let mut state = self.lock();
        state.pending.remove(&completion.event_id);
        if let Some(record) = Self::live(&mut state.records, &completion.project, now)
            && let Some(recorded) = record.completion.as_mut()
            && recorded.event_id == completion.event_id
        {
            recorded.published = true;
        }
        Ok(())
    }

    async fn release(
        &self,
        claimed: &ClaimedCompletion,
        retry_at: Timestamp,
    ) -> Result<(), ProgressError> {
        let mut state = self.lock();
        if let Some(p) = state.pending.get_mut(&claimed.completion.event_id)
            && p.due == claimed.until
        {
            p.due = retry_at;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
