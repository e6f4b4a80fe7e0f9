//! The [`ProgressStore`] port on Redis: each method runs its script (or one
//! HGETALL) under the store's retry and turns the answer into domain values.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use fred::prelude::HashesInterface;

use super::{
    RedisProgressStore,
    reply::{
        FinishLineReply, completion_of, millis, parse_completion, progress_of, stamp_args, status,
    },
};
use crate::{
    domain::{
        events::EventId,
        progress::{
            ClaimedCompletion, Completion, CompletionStamp, DueCompletions, ItemOutcome,
            ItemReport, ItemUpdate, PROGRESS_TTL_SECONDS, Progress, ProjectId, ProjectStatus,
            ReportKey, TotalUpdate,
        },
        timestamp::Timestamp,
    },
    ports::{ProgressError, ProgressStore},
};

#[async_trait]
impl ProgressStore for RedisProgressStore {
    async fn init(&self, project: &ProjectId) -> Result<Progress, ProgressError> {
        let keys = vec![
            Self::hash_key(project),
            Self::items_key(project),
            Self::calls_key(project),
        ];
        self.run("init", || {
            self.replicated::<i64>(
                &self.init,
                keys.clone(),
                vec![PROGRESS_TTL_SECONDS.to_string()],
            )
        })
        .await?;
        Ok(Progress::initial())
    }

    async fn set_total(
        &self,
        project: &ProjectId,
        total: u64,
        new_status: ProjectStatus,
        stamp: &CompletionStamp,
    ) -> Result<TotalUpdate, ProgressError> {
        let keys = self.finish_line_keys(project);
        let mut args = vec![
            total.to_string(),
            new_status.as_str().to_owned(),
            PROGRESS_TTL_SECONDS.to_string(),
        ];
        args.extend(stamp_args(project, stamp));
        let reply: FinishLineReply = self
            .run("set_total", || {
                self.replicated(&self.set_total, keys.clone(), args.clone())
            })
            .await?;
        match reply.0.as_str() {
            "NOT_FOUND" => Err(ProgressError::NotFound(project.clone())),
            "ALREADY_DONE" => Err(ProgressError::AlreadyDone(project.clone())),
            _ => {
                let completion = completion_of(&reply, stamp)?;
                Ok(TotalUpdate {
                    completed: completion.is_some(),
                    progress: progress_of(&reply)?,
                    completion,
                })
            }
        }
    }

    async fn mark_item_done(
        &self,
        project: &ProjectId,
        report: &ItemReport,
    ) -> Result<ItemUpdate, ProgressError> {
        let keys = self.finish_line_keys(project);
        let (kind, key) = match &report.key {
            ReportKey::Item(item) => ("item", item.as_str().to_owned()),
            ReportKey::Call(token) => ("call", token.to_string()),
        };
        let mut args = vec![
            if report.is_error { "1" } else { "0" }.to_owned(),
            PROGRESS_TTL_SECONDS.to_string(),
            kind.to_owned(),
        ];
        args.extend(stamp_args(project, &report.stamp));
        args.push(key);
        let reply: FinishLineReply = self
            .run("mark_item_done", || {
                self.replicated(&self.mark, keys.clone(), args.clone())
            })
            .await?;
        let outcome = match reply.0.as_str() {
            "NOT_FOUND" => return Err(ProgressError::NotFound(project.clone())),
            "COMPLETED" => ItemOutcome::Completed,
            _ => ItemOutcome::Processing,
        };
        Ok(ItemUpdate {
            outcome,
            duplicate: reply.5 == 1,
            progress: progress_of(&reply)?,
            completion: completion_of(&reply, &report.stamp)?,
        })
    }

    async fn get_progress(&self, project: &ProjectId) -> Result<Option<Progress>, ProgressError> {
        let key = Self::hash_key(project);
        let fields: HashMap<String, String> = self
            .run("get_progress", || self.pool.hgetall(key.clone()))
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let number = |name: &str| -> Result<u64, ProgressError> {
            fields
                .get(name)
                .map_or(Ok(0), |v| v.parse())
                .map_err(|e| ProgressError::Unexpected(anyhow::anyhow!("stored `{name}`: {e}")))
        };
        Ok(Some(Progress {
            status: status(fields.get("status").map_or("INITIALIZING", String::as_str))?,
            total: number("total")?,
            done: number("done")?,
            errors: number("errors")?,
        }))
    }

    async fn claim_due_completions(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<DueCompletions, ProgressError> {
        let until = CompletionStamp {
            event_id: EventId::from_uuid(uuid::Uuid::nil()),
            at: now,
            lease,
        }
        .claim_until();
        let keys = vec![self.pending_key.clone(), self.records_key.clone()];
        let args = vec![millis(now), millis(until), limit.to_string()];
        let (pending, ids, records): (u64, Vec<String>, Vec<String>) = self
            .run("claim_due_completions", || {
                self.claim_due
                    .evalsha_with_reload(self.pool.next(), keys.clone(), args.clone())
            })
            .await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for (id, record) in ids.iter().zip(&records) {
            match parse_completion(id, record) {
                Ok(completion) => claimed.push(ClaimedCompletion { completion, until }),
                // One unreadable record must not hold back the others; it
                // stays pending (and counted) for an operator to look at.
                Err(e) => {
                    tracing::error!(event_id = %id, error = %e, "unreadable pending completion skipped")
                }
            }
        }
        Ok(DueCompletions { claimed, pending })
    }

    async fn mark_published(&self, completion: &Completion) -> Result<(), ProgressError> {
        let keys = vec![
            self.pending_key.clone(),
            self.records_key.clone(),
            Self::hash_key(&completion.project),
        ];
        let args = vec![completion.event_id.to_string()];
        self.run("mark_published", || {
            self.replicated::<i64>(&self.published, keys.clone(), args.clone())
        })
        .await?;
        Ok(())
    }

    async fn release(
        &self,
        claimed: &ClaimedCompletion,
        retry_at: Timestamp,
    ) -> Result<(), ProgressError> {
        let keys = vec![self.pending_key.clone()];
        let args = vec![
            claimed.completion.event_id.to_string(),
            millis(claimed.until),
            millis(retry_at),
        ];
        self.run("release", || {
            self.release.evalsha_with_reload::<i64, _, _>(
                self.pool.next(),
                keys.clone(),
                args.clone(),
            )
        })
        .await?;
        Ok(())
    }
}
