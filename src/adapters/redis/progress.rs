//! `RedisProgressStore`: project progress in a Redis hash `smap:proj:{id}`
//! (`status`, `total`, `done`, `errors`, and once the finish line is crossed
//! the completion: `completed_event_id`, `completed_at`, `completed_by`,
//! `completed_published`), the sets of reports already counted
//! `smap:proj:{id}:items` (item ids) and `smap:proj:{id}:calls` (call tokens
//! of reports without one), all with a 7-day TTL refreshed by every write;
//! and the unpublished completions, `smap:proj:completions:records` (event id
//! → the event's data) indexed by `smap:proj:completions:pending` (event id
//! scored by when its publishing claim lapses, in ms; see
//! [`COMPLETIONS_PREFIX`]). Every write is ONE Lua
//! script (EVALSHA, reloaded on NOSCRIPT), so the finish line and its record
//! are atomic however many workers race, and every script gives the same
//! answer when it runs again for the same call — a retry after a lost reply
//! or a replay after a reconnect changes nothing. Reads are one HGETALL that
//! creates nothing.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use fred::{
    clients::Client,
    interfaces::ServerInterface,
    prelude::{ClientLike, Error as RedisError, ErrorKind, HashesInterface, Pool},
    types::{FromValue, scripts::Script},
};
use serde::Deserialize;

use super::is_transient;
use crate::{
    domain::{
        events::EventId,
        progress::{
            ClaimedCompletion, Completion, CompletionRecord, CompletionStamp, DueCompletions,
            ItemOutcome, ItemReport, ItemUpdate, PROGRESS_TTL_SECONDS, Progress, ProjectId,
            ProjectStatus, ReportKey, TotalUpdate,
        },
        retry::RetryPolicy,
        timestamp::Timestamp,
    },
    ports::{ProgressError, ProgressStore},
};

const KEY_PREFIX: &str = "smap:proj:";
/// The unpublished completions live under this prefix, not under a
/// project's keys, so a new `init` or the project's expiry cannot lose one;
/// project ids have no `:`, so no project's keys can be these.
/// `{prefix}:records`: event id → the event's data (JSON);
/// `{prefix}:pending`: the same event ids, scored by when their publishing
/// claim lapses (ms since the epoch).
pub const COMPLETIONS_PREFIX: &str = "smap:proj:completions";

/// Replaces the record: the four fields, no reports, fresh TTL. An
/// unpublished completion stays in the completion keys.
const INIT: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'status', 'INITIALIZING', 'total', 0, 'done', 0, 'errors', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"#;

/// Lua shared by the two scripts that may cross the finish line.
/// KEYS: hash, items, calls, pending, records.
/// ARGV[4..8]: event_id, completed_at, now_ms, claim_until_ms, project_id —
/// the caller's stamp, so the script stays deterministic.
/// Every answer is {result, status, total, done, errors, duplicate,
/// completed, event_id, completed_at, published, claimed_record}.
macro_rules! finish_line_script {
    ($body:literal) => {
        concat!(
            r#"
local function int(n) return string.format('%d', n) end
local function complete(by, total, done, errors)
  redis.call('HSET', KEYS[1], 'status', 'DONE', 'completed_event_id', ARGV[4],
    'completed_at', ARGV[5], 'completed_by', by, 'completed_published', 0)
  local record = '{"project_id":"' .. ARGV[8] .. '","total":' .. int(total) ..
    ',"done":' .. int(done) .. ',"errors":' .. int(errors) ..
    ',"completed_at":"' .. ARGV[5] .. '"}'
  redis.call('HSET', KEYS[5], ARGV[4], record)
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[4])
  return record
end
local function recall()
  local id = redis.call('HGET', KEYS[1], 'completed_event_id')
  local due = id and redis.call('ZSCORE', KEYS[4], id)
  -- Lapsed or released; or still held by this very call (a replay of the
  -- step that crossed the line: same event id, same claim).
  if due and (tonumber(due) <= tonumber(ARGV[6]) or
      (id == ARGV[4] and tonumber(due) == tonumber(ARGV[7]))) then
    local record = redis.call('HGET', KEYS[5], id)
    if record then
      redis.call('ZADD', KEYS[4], ARGV[7], id)
      return record
    end
  end
  return ''
end
local function answer(result, status, total, done, errors, duplicate, claimed)
  if not claimed then return {result, status, total, done, errors, duplicate, 0, '', '', 0, ''} end
  local c = redis.call('HMGET', KEYS[1], 'completed_event_id', 'completed_at', 'completed_published')
  return {result, status, total, done, errors, duplicate, 1, c[1] or '', c[2] or '',
    tonumber(c[3] or '0'), claimed}
end
"#,
            $body
        )
    };
}

/// Total and status together, then the finish line. A retry of the request
/// that completed the project (same total and status) answers as it did.
/// ARGV: total, status, ttl, then the stamp.
const SET_TOTAL: &str = finish_line_script!(
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return answer('NOT_FOUND', '', 0, 0, 0, 0) end
local by = 'total:' .. ARGV[1] .. ':' .. ARGV[2]
local v = redis.call('HMGET', KEYS[1], 'status', 'done', 'errors', 'completed_by', 'total')
local done = tonumber(v[2] or '0')
local errors = tonumber(v[3] or '0')
if v[1] == 'DONE' then
  if v[4] ~= by then return answer('ALREADY_DONE', 'DONE', 0, 0, 0, 0) end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return answer('OK', 'DONE', tonumber(v[5] or '0'), done, errors, 0, recall())
end
local total = tonumber(ARGV[1])
local status = ARGV[2]
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'status', status)
local claimed = nil
if total > 0 and done >= total and status ~= 'CRAWLING' then
  status = 'DONE'
  claimed = complete(by, total, done, errors)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return answer('OK', status, total, done, errors, 0, claimed)
"#
);

/// Count the report once (its item id, or its call token), then the finish
/// line. A report counted before changes nothing; if it is the one that
/// crossed the line, it is COMPLETED again.
/// ARGV: is_error ('1'/'0'), ttl, 'item' or 'call' with its key, then the
/// stamp (ARGV[4..8] as above: the key is ARGV[9]).
const MARK_ITEM_DONE: &str = finish_line_script!(
    r#"
local v = redis.call('HMGET', KEYS[1], 'status', 'total', 'done', 'errors', 'completed_by')
local status = v[1]
if not status then return answer('NOT_FOUND', '', 0, 0, 0, 0) end
local total = tonumber(v[2] or '0')
local done = tonumber(v[3] or '0')
local errors = tonumber(v[4] or '0')
local by = ARGV[3] .. ':' .. ARGV[9]
local reports = KEYS[2]
if ARGV[3] == 'call' then reports = KEYS[3] end
local first = redis.call('SADD', reports, ARGV[9]) == 1
redis.call('EXPIRE', reports, ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if not first then
  -- A replayed call is the same report, not a duplicate one.
  local duplicate = 0
  if ARGV[3] == 'item' then duplicate = 1 end
  if v[5] == by then
    local claimed = recall()
    return answer('COMPLETED', status, total, done, errors, duplicate, claimed)
  end
  return answer('PROCESSING', status, total, done, errors, duplicate)
end
done = redis.call('HINCRBY', KEYS[1], 'done', 1)
if ARGV[1] == '1' then errors = redis.call('HINCRBY', KEYS[1], 'errors', 1) end
if total > 0 and done >= total and status ~= 'CRAWLING' and status ~= 'DONE' then
  local claimed = complete(by, total, done, errors)
  return answer('COMPLETED', 'DONE', total, done, errors, 0, claimed)
end
return answer('PROCESSING', status, total, done, errors, 0)
"#
);

/// Claims completions whose claim lapsed. KEYS: pending, records.
/// ARGV: now_ms, claim_until_ms, limit. Returns {pending count, ids, records};
/// an id without a record (none is written so) is dropped.
const CLAIM_DUE: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed, records = {}, {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(claimed, id)
    table.insert(records, record)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return {redis.call('ZCARD', KEYS[1]), claimed, records}
"#;

/// Published: forget the completion, and say so in the project's record if
/// it is still the one that recorded it. KEYS: pending, records, hash.
/// ARGV: event_id.
const PUBLISHED: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], 'completed_event_id') == ARGV[1] then
  redis.call('HSET', KEYS[3], 'completed_published', 1)
end
return 1
"#;

/// Not published: due again at `retry_ms`, unless another holder claimed it
/// since. KEYS: pending. ARGV: event_id, held_until_ms, retry_ms.
const RELEASE: &str = r#"
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
  return 1
end
return 0
"#;

/// {result, status, total, done, errors, duplicate, completed, event_id,
/// completed_at, published, claimed_record}.
type FinishLineReply = (
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

pub struct RedisProgressStore {
    pool: Pool,
    init: Script,
    set_total: Script,
    mark: Script,
    claim_due: Script,
    published: Script,
    release: Script,
    retry: RetryPolicy,
    records_key: String,
    pending_key: String,
    /// With replicas (Sentinel): how long a write waits for a replica to
    /// have it (`WAIT 1 <ms>`) before it answers. decisions.md 60.
    replica_wait: Option<Duration>,
    /// Set when no replica acknowledged in time: until then writes do not
    /// wait (a promoted master has no replica until the old one returns,
    /// and each WAIT would block its connection for the whole timeout).
    no_replica_until: Mutex<Option<Instant>>,
}

/// How long writes stop waiting for a replica after one did not answer.
const NO_REPLICA_PAUSE: Duration = Duration::from_secs(5);

impl RedisProgressStore {
    /// Transient errors are retried 3 times, 1 s, 2 s then 4 s apart (DESIGN §5).
    /// Safe for every script: each answers the same when run again for the
    /// same call (see the module doc).
    pub const RETRY: RetryPolicy = RetryPolicy::exponential(4, Duration::from_secs(1));

    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            init: Script::from_lua(INIT),
            set_total: Script::from_lua(SET_TOTAL),
            mark: Script::from_lua(MARK_ITEM_DONE),
            claim_due: Script::from_lua(CLAIM_DUE),
            published: Script::from_lua(PUBLISHED),
            release: Script::from_lua(RELEASE),
            retry: Self::RETRY,
            records_key: format!("{COMPLETIONS_PREFIX}:records"),
            pending_key: format!("{COMPLETIONS_PREFIX}:pending"),
            replica_wait: None,
            no_replica_until: Mutex::new(None),
        }
    }

    /// How long each write waits for a replica (`WAIT 1 <ms>`); only where
    /// replicas take over (Sentinel): a lone server has none to wait for,
    /// and WAIT would cost the whole timeout.
    pub fn with_replica_wait(mut self, wait: Duration) -> Self {
        self.replica_wait = Some(wait);
        self
    }

    /// Completion keys under another prefix: a test that claims whatever is
    /// due must not claim the completions of the tests beside it.
    pub fn with_completion_prefix(mut self, prefix: &str) -> Self {
        self.records_key = format!("{prefix}:records");
        self.pending_key = format!("{prefix}:pending");
        self
    }

    /// The hash of unpublished completions (event id → the event's data).
    pub fn records_key(&self) -> &str {
        &self.records_key
    }

    /// The sorted set of unpublished completions by claim expiry.
    pub fn pending_key(&self) -> &str {
        &self.pending_key
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

    /// Tokens of the reports without an item id already counted.
    pub fn calls_key(project: &ProjectId) -> String {
        format!("{KEY_PREFIX}{project}:calls")
    }

    /// The keys of the scripts that may cross the finish line.
    fn finish_line_keys(&self, project: &ProjectId) -> Vec<String> {
        vec![
            Self::hash_key(project),
            Self::items_key(project),
            Self::calls_key(project),
            self.pending_key.clone(),
            self.records_key.clone(),
        ]
    }

    /// Runs a write script, then — with replicas — waits on the same
    /// connection until a replica has the write. Replication is
    /// asynchronous: a master SIGKILLed between its reply and its
    /// replication stream takes acknowledged writes with it (measured: 2 of
    /// 1 500 item reports lost in the failover test without this), so a
    /// worker that acked its message would never report that item again,
    /// and a lost completion record would let a retry cross the finish line
    /// under a second event id. A failed WAIT (the connection died) fails
    /// the call, and the caller's retry runs the script again — safe, each
    /// script answers the same for the same call. A WAIT that times out
    /// (no replica) answers anyway, as one server would, and writes stop
    /// waiting for `NO_REPLICA_PAUSE`. decisions.md 60.
    async fn replicated<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R, RedisError> {
        let client = self.pool.next();
        let reply: R = script.evalsha_with_reload(client, keys, args).await?;
        self.wait_for_replica(client).await?;
        Ok(reply)
    }

    async fn wait_for_replica(&self, client: &Client) -> Result<(), RedisError> {
        let Some(wait) = self.replica_wait else {
            return Ok(());
        };
        let paused = |until: &Option<Instant>| until.is_some_and(|u| Instant::now() < u);
        if self.no_replica_until.lock().is_ok_and(|u| paused(&u)) {
            return Ok(());
        }
        let ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let replicas: i64 = client.wait(1, ms).await?;
        if replicas < 1 {
            tracing::warn!(
                wait_ms = ms,
                pause_s = NO_REPLICA_PAUSE.as_secs(),
                "no Redis replica acknowledged a progress write in time; writes go on without \
                 waiting for one (a failover now could lose them)"
            );
            if let Ok(mut until) = self.no_replica_until.lock() {
                *until = Some(Instant::now() + NO_REPLICA_PAUSE);
            }
        }
        Ok(())
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

fn unexpected(what: &str, e: impl std::fmt::Display) -> ProgressError {
    ProgressError::Unexpected(anyhow::anyhow!("stored {what}: {e}"))
}

fn millis(at: Timestamp) -> String {
    at.as_datetime().timestamp_millis().to_string()
}

/// ARGV[4..8] of the finish-line scripts.
fn stamp_args(project: &ProjectId, stamp: &CompletionStamp) -> [String; 5] {
    [
        stamp.event_id.to_string(),
        stamp.at.to_string(),
        millis(stamp.at),
        millis(stamp.claim_until()),
        project.to_string(),
    ]
}

fn parse_completion(event_id: &str, record: &str) -> Result<Completion, ProgressError> {
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
fn completion_of(
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

fn progress_of(reply: &FinishLineReply) -> Result<Progress, ProgressError> {
    let (_, stored, total, done, errors, ..) = reply;
    Ok(Progress {
        status: status(stored)?,
        total: *total,
        done: *done,
        errors: *errors,
    })
}

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
