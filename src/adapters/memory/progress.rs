//! `InMemoryProgressStore`: project progress in process, with the same atomic
//! finish line, item de-duplication and 7-day time to live as the Redis store.
//! One mutex makes each operation a single atomic step, as the Lua script
//! does on Redis.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::{
    domain::progress::{
        ItemId, ItemOutcome, ItemUpdate, PROGRESS_TTL_SECONDS, Progress, ProjectId, ProjectStatus,
        TotalUpdate,
    },
    ports::{Clock, ProgressError, ProgressStore},
};

struct Record {
    progress: Progress,
    items: HashSet<ItemId>,
    expires_at: DateTime<Utc>,
}

pub struct InMemoryProgressStore {
    clock: Arc<dyn Clock>,
    records: Mutex<HashMap<ProjectId, Record>>,
}

impl InMemoryProgressStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ProjectId, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut records = self.lock();
        Self::live(&mut records, project, now).map(|r| (r.expires_at - now).num_seconds())
    }
}

fn ttl() -> Duration {
    Duration::seconds(PROGRESS_TTL_SECONDS)
}

#[async_trait]
impl ProgressStore for InMemoryProgressStore {
    async fn init(&self, project: &ProjectId) -> Result<Progress, ProgressError> {
        let now = self.clock.now();
        let progress = Progress::initial();
        self.lock().insert(
            project.clone(),
            Record {
                progress,
                items: HashSet::new(),
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
    ) -> Result<TotalUpdate, ProgressError> {
        let now = self.clock.now();
        let mut records = self.lock();
        let record = Self::live(&mut records, project, now)
            .ok_or_else(|| ProgressError::NotFound(project.clone()))?;
        if record.progress.status == ProjectStatus::Done {
            return Err(ProgressError::AlreadyDone(project.clone()));
        }
        record.progress.total = total;
        record.progress.status = status;
        let completed = record.progress.reached_finish_line();
        if completed {
            record.progress.status = ProjectStatus::Done;
        }
        record.expires_at = now + ttl();
        Ok(TotalUpdate {
            completed,
            progress: record.progress,
        })
    }

    async fn mark_item_done<'a>(
        &self,
        project: &ProjectId,
        is_error: bool,
        item: Option<&'a ItemId>,
    ) -> Result<ItemUpdate, ProgressError> {
        let now = self.clock.now();
        let mut records = self.lock();
        let record = Self::live(&mut records, project, now)
            .ok_or_else(|| ProgressError::NotFound(project.clone()))?;
        record.expires_at = now + ttl();
        if let Some(item) = item
            && !record.items.insert(item.clone())
        {
            return Ok(ItemUpdate {
                outcome: ItemOutcome::Processing,
                duplicate: true,
                progress: record.progress,
            });
        }
        record.progress.done += 1;
        if is_error {
            record.progress.errors += 1;
        }
        let outcome = if record.progress.reached_finish_line() {
            record.progress.status = ProjectStatus::Done;
            ItemOutcome::Completed
        } else {
            ItemOutcome::Processing
        };
        Ok(ItemUpdate {
            outcome,
            duplicate: false,
            progress: record.progress,
        })
    }

    async fn get_progress(&self, project: &ProjectId) -> Result<Option<Progress>, ProgressError> {
        let now = self.clock.now();
        let mut records = self.lock();
        Ok(Self::live(&mut records, project, now).map(|r| r.progress))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::{adapters::clock::ManualClock, contract};

    fn store() -> (Arc<ManualClock>, Arc<InMemoryProgressStore>) {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
        ));
        (clock.clone(), Arc::new(InMemoryProgressStore::new(clock)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_in_memory_store_keeps_the_progress_store_contract() {
        let (_, store) = store();
        contract::progress_store::run_all(store, "mem").await;
    }

    #[tokio::test]
    async fn every_write_refreshes_the_seven_day_ttl_and_expired_projects_vanish() {
        let (clock, store) = store();
        let id = ProjectId::parse("ttl").unwrap();
        store.init(&id).await.unwrap();
        assert_eq!(store.ttl_seconds(&id), Some(PROGRESS_TTL_SECONDS));

        clock.advance(Duration::days(3));
        assert_eq!(
            store.ttl_seconds(&id),
            Some(PROGRESS_TTL_SECONDS - 3 * 86_400)
        );
        store.mark_item_done(&id, false, None).await.unwrap();
        assert_eq!(store.ttl_seconds(&id), Some(PROGRESS_TTL_SECONDS));

        clock.advance(Duration::days(6));
        store
            .set_total(&id, 9, ProjectStatus::Processing)
            .await
            .unwrap();
        assert_eq!(store.ttl_seconds(&id), Some(PROGRESS_TTL_SECONDS));

        clock.advance(Duration::seconds(PROGRESS_TTL_SECONDS));
        assert_eq!(store.get_progress(&id).await.unwrap(), None);
        assert!(matches!(
            store.mark_item_done(&id, false, None).await,
            Err(ProgressError::NotFound(_))
        ));
    }
}
