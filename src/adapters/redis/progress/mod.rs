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

mod reply;
mod scripts;
mod store;

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use fred::{
    clients::Client,
    interfaces::ServerInterface,
    prelude::{ClientLike, Error as RedisError, ErrorKind, Pool},
    types::{FromValue, scripts::Script},
};

use super::is_transient;
use crate::{
    domain::{progress::ProjectId, retry::RetryPolicy},
    ports::ProgressError,
};
use scripts::{CLAIM_DUE, INIT, MARK_ITEM_DONE, PUBLISHED, RELEASE, SET_TOTAL};

const KEY_PREFIX: &str = "smap:proj:";
/// The unpublished completions live under this prefix, not under a
/// project's keys, so a new `init` or the project's expiry cannot lose one;
/// project ids have no `:`, so no project's keys can be these.
/// `{prefix}:records`: event id → the event's data (JSON);
/// `{prefix}:pending`: the same event ids, scored by when their publishing
/// claim lapses (ms since the epoch).
pub const COMPLETIONS_PREFIX: &str = "smap:proj:completions";

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

    /// The Lua of `mark_item_done`, for benchmarks that run it from another
    /// client (KEYS: hash, items, calls, pending, records; ARGV: see the
    /// script).
    pub fn mark_item_done_script() -> &'static str {
        MARK_ITEM_DONE
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
