//! `RedisProgressStore`: project progress in a Redis hash `smap:proj:{id}`
//! (`status`, `total`, `done`, `errors`) and a set `smap:proj:{id}:items`,
//! both with a 7-day TTL refreshed by every write. Every write is ONE Lua
//! script (EVALSHA, reloaded on NOSCRIPT), so the finish line is atomic
//! however many workers race; reads are one HGETALL that creates nothing.

use std::collections::HashMap;

use async_trait::async_trait;
use fred::{
    prelude::{ClientLike, Error as RedisError, ErrorKind, HashesInterface, Pool},
    types::scripts::Script,
};

use super::is_transient;
use crate::{
    domain::{
        progress::{
            ItemId, ItemOutcome, ItemUpdate, PROGRESS_TTL_SECONDS, Progress, ProjectId,
            ProjectStatus, TotalUpdate,
        },
        retry::RetryPolicy,
    },
    ports::{ProgressError, ProgressStore},
};

const KEY_PREFIX: &str = "smap:proj:";

/// Replaces the record: the four fields, no item ids, fresh TTL.
const INIT: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'status', 'INITIALIZING', 'total', 0, 'done', 0, 'errors', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"#;

/// Total and status together, then the finish line.
/// Returns {result, status, total, done, errors, completed}.
const SET_TOTAL: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND', '', 0, 0, 0, 0} end
local current = redis.call('HGET', KEYS[1], 'status')
if current == 'DONE' then return {'ALREADY_DONE', 'DONE', 0, 0, 0, 0} end
local total = tonumber(ARGV[1])
local status = ARGV[2]
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'status', status)
local v = redis.call('HMGET', KEYS[1], 'done', 'errors')
local done = tonumber(v[1] or '0')
local errors = tonumber(v[2] or '0')
local completed = 0
if total > 0 and done >= total and status ~= 'CRAWLING' then
  redis.call('HSET', KEYS[1], 'status', 'DONE')
  status = 'DONE'
  completed = 1
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {'OK', status, total, done, errors, completed}
"#;

/// Count the item (once per item id), then the finish line.
/// ARGV: is_error ('1'/'0'), ttl, [item_id].
/// Returns {outcome, status, total, done, errors, duplicate}.
const MARK_ITEM_DONE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'status', 'total', 'done', 'errors')
local status = v[1]
if not status then return {'NOT_FOUND', '', 0, 0, 0, 0} end
local total = tonumber(v[2] or '0')
local done = tonumber(v[3] or '0')
local errors = tonumber(v[4] or '0')
local duplicate = 0
if #ARGV >= 3 then
  if redis.call('SADD', KEYS[2], ARGV[3]) == 0 then duplicate = 1 end
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
local outcome = 'PROCESSING'
if duplicate == 0 then
  done = redis.call('HINCRBY', KEYS[1], 'done', 1)
  if ARGV[1] == '1' then errors = redis.call('HINCRBY', KEYS[1], 'errors', 1) end
  if total > 0 and done >= total and status ~= 'CRAWLING' and status ~= 'DONE' then
    redis.call('HSET', KEYS[1], 'status', 'DONE')
    status = 'DONE'
    outcome = 'COMPLETED'
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {outcome, status, total, done, errors, duplicate}
"#;

type ScriptReply = (String, String, u64, u64, u64, u64);

pub struct RedisProgressStore {
    pool: Pool,
    init: Script,
    set_total: Script,
    mark: Script,
    retry: RetryPolicy,
}

impl RedisProgressStore {
    /// Transient errors are retried 3 times, 1 s, 2 s then 4 s apart (DESIGN §5).
    pub const RETRY: RetryPolicy = RetryPolicy {
        attempts: 4,
        initial_backoff: std::time::Duration::from_secs(1),
    };

    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            init: Script::from_lua(INIT),
            set_total: Script::from_lua(SET_TOTAL),
            mark: Script::from_lua(MARK_ITEM_DONE),
            retry: Self::RETRY,
        }
    }

    /// Another retry policy (tests of outages use a short one).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn hash_key(project: &ProjectId) -> String {
        format!("{KEY_PREFIX}{project}")
    }

    pub fn items_key(project: &ProjectId) -> String {
        format!("{KEY_PREFIX}{project}:items")
    }

    fn keys(project: &ProjectId) -> Vec<String> {
        vec![Self::hash_key(project), Self::items_key(project)]
    }

    async fn run<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, ProgressError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        self.retry
            .run(
                |attempt| {
                    // Disconnected (Redis down, reconnecting): fail this try
                    // at once instead of queueing for the command timeout,
                    // so an outage costs the backoff (7 s), not 4 timeouts more.
                    let connected = self.pool.next().is_connected();
                    let fut = call();
                    async move {
                        if !connected {
                            let e = RedisError::new(ErrorKind::IO, "not connected to Redis");
                            tracing::warn!(operation = op, attempt, error = %e, "Redis command failed");
                            return Err(e);
                        }
                        fut.await.inspect_err(|e| {
                            tracing::warn!(operation = op, attempt, error = %e, "Redis command failed");
                        })
                    }
                },
                is_transient,
            )
            .await
            .map_err(|e| {
                if is_transient(&e) {
                    ProgressError::Unavailable(e.into())
                } else {
                    ProgressError::Unexpected(e.into())
                }
            })
    }
}

fn status(raw: &str) -> Result<ProjectStatus, ProgressError> {
    raw.parse()
        .map_err(|e| ProgressError::Unexpected(anyhow::anyhow!("stored status `{raw}`: {e}")))
}

#[async_trait]
impl ProgressStore for RedisProgressStore {
    async fn init(&self, project: &ProjectId) -> Result<Progress, ProgressError> {
        let keys = Self::keys(project);
        self.run("init", || {
            self.init.evalsha_with_reload::<i64, _, _>(
                self.pool.next(),
                keys.clone(),
                vec![PROGRESS_TTL_SECONDS],
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
    ) -> Result<TotalUpdate, ProgressError> {
        let keys = Self::keys(project);
        let args = vec![
            total.to_string(),
            new_status.as_str().to_owned(),
            PROGRESS_TTL_SECONDS.to_string(),
        ];
        let (result, stored, total, done, errors, completed): ScriptReply = self
            .run("set_total", || {
                self.set_total
                    .evalsha_with_reload(self.pool.next(), keys.clone(), args.clone())
            })
            .await?;
        match result.as_str() {
            "NOT_FOUND" => Err(ProgressError::NotFound(project.clone())),
            "ALREADY_DONE" => Err(ProgressError::AlreadyDone(project.clone())),
            _ => Ok(TotalUpdate {
                completed: completed == 1,
                progress: Progress {
                    status: status(&stored)?,
                    total,
                    done,
                    errors,
                },
            }),
        }
    }

    async fn mark_item_done<'a>(
        &self,
        project: &ProjectId,
        is_error: bool,
        item: Option<&'a ItemId>,
    ) -> Result<ItemUpdate, ProgressError> {
        let keys = Self::keys(project);
        let mut args = vec![
            if is_error { "1" } else { "0" }.to_owned(),
            PROGRESS_TTL_SECONDS.to_string(),
        ];
        if let Some(item) = item {
            args.push(item.as_str().to_owned());
        }
        let (outcome, stored, total, done, errors, duplicate): ScriptReply = self
            .run("mark_item_done", || {
                self.mark
                    .evalsha_with_reload(self.pool.next(), keys.clone(), args.clone())
            })
            .await?;
        let outcome = match outcome.as_str() {
            "NOT_FOUND" => return Err(ProgressError::NotFound(project.clone())),
            "COMPLETED" => ItemOutcome::Completed,
            _ => ItemOutcome::Processing,
        };
        Ok(ItemUpdate {
            outcome,
            duplicate: duplicate == 1,
            progress: Progress {
                status: status(&stored)?,
                total,
                done,
                errors,
            },
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
}
