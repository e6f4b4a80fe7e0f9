//! What the topic files of the PostgreSQL store share: the connection and
//! row helpers, the outbox insert, and the mapping of database errors
//! (constraint names) to `StoreError`.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
    sql_types as sql,
};
use diesel_async::{RunQueryDsl, pooled_connection::deadpool::Object};
use uuid::Uuid;

use crate::adapters::postgres::schema::{outbox, users};
use crate::{
    domain::email_address::Email,
    ports::{OutboxEntry, OutboxEvent, OutboxLink, PublishError, StoreError},
};

use super::{OUTBOX_CHANNEL, PgIdentityStore, lower};

/// What [`enqueue`] wrote, for [`PgIdentityStore::committed`] to act on
/// once the transaction committed.
#[derive(Default)]
#[must_use = "hand the rows over with `committed` after the commit"]
pub(super) struct Enqueued {
    /// Rows written claimed for this process's relay (decision 70).
    handed: Vec<OutboxEntry>,
    /// Rows left to the claim (a NOTIFY went with them).
    unleased: usize,
    /// The end of the claim written with `handed`: of the first write of
    /// the transaction (the take must be published before it) and of the
    /// last (a release ends every claim up to it).
    until: Option<DateTime<Utc>>,
    last_until: Option<DateTime<Utc>>,
}

impl Enqueued {
    /// Adds what a later write of the same transaction enqueued.
    pub(super) fn and(mut self, other: Enqueued) -> Enqueued {
        self.handed.extend(other.handed);
        self.unleased += other.unleased;
        // The earliest: a later write of the transaction claimed later.
        self.until = self.until.or(other.until);
        self.last_until = other.last_until.or(self.last_until);
        self
    }
}

/// One row as the insert returns it.
#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = sql::BigInt)]
    id: i64,
    #[diesel(sql_type = sql::Text)]
    event_id: String,
    #[diesel(sql_type = sql::Timestamptz)]
    created_at: DateTime<Utc>,
    /// Written claimed, for the hand-off.
    #[diesel(sql_type = sql::Bool)]
    handed: bool,
    /// Written unclaimed although a lease was offered: an older row of its
    /// aggregate was unpublished.
    #[diesel(sql_type = sql::Bool)]
    blocked: bool,
}

impl Enqueued {
    /// What the insert returned, as rows to hand over and rows left, and
    /// the aggregates of the rows left behind an older unpublished row.
    fn from_written(
        written: Vec<Written>,
        events: &[OutboxEvent],
        trace: &std::collections::BTreeMap<String, String>,
        lease: Option<DateTime<Utc>>,
    ) -> (Enqueued, Vec<String>) {
        let mut blocked = Vec::new();
        let mut enqueued = Enqueued {
            until: lease,
            last_until: lease,
            ..Enqueued::default()
        };
        for row in written {
            let event = events
                .iter()
                .find(|e| e.event.event_id().to_string() == row.event_id);
            if !row.handed {
                enqueued.unleased += 1;
                if let Some(event) = event.filter(|_| row.blocked) {
                    blocked.push(event.aggregate.clone());
                }
                continue;
            }
            let Some(event) = event else {
                // Not reachable (ids round-trip); the claim runs out.
                tracing::error!(
                    event_id = row.event_id,
                    "outbox row not matched to its event"
                );
                continue;
            };
            enqueued.handed.push(OutboxEntry {
                id: row.id,
                aggregate: event.aggregate.clone(),
                event_id: row.event_id,
                routing_key: event.event.routing_key().to_string(),
                body: String::from_utf8_lossy(event.event.body()).into_owned(),
                trace: trace.clone(),
                attempts: 0,
                created_at: row.created_at,
            });
        }
        (enqueued, blocked)
    }
}

/// Writes `events` to the outbox on `conn` (inside the caller's
/// transaction), with the current span's trace context. While this
/// process's relay takes rows (`link`), a row whose aggregate has no older
/// unpublished row is written claimed for the relay's lease and handed over
/// at the commit; the others are left to the claim and notify the relays
/// (PostgreSQL delivers the NOTIFY at commit, and drops it with a rollback).
pub(super) async fn enqueue(
    conn: &mut diesel_async::AsyncPgConnection,
    events: &[OutboxEvent],
    link: &OutboxLink,
) -> Result<Enqueued, DieselError> {
    if events.is_empty() {
        return Ok(Enqueued::default());
    }
    let trace = crate::adapters::bus::message::trace_text();
    let lease = link.lease().map(|lease| Utc::now() + lease);
    let column = |f: fn(&OutboxEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
    // One statement: the rows (in the order given, so `id` follows it) and
    // the check for an older unpublished row of each aggregate (the
    // `outbox_unpublished` index). Rows of this statement do not see one
    // another: two of one aggregate are both handed over, in `id` order.
    let written: Vec<Written> = diesel::sql_query(
        "INSERT INTO outbox (event_id, aggregate, routing_key, body, traceparent, tracestate, \
                             locked_until) \
         SELECT v.event_id, v.aggregate, v.routing_key, v.body, $5, $6, \
                CASE WHEN $7::timestamptz IS NOT NULL AND NOT EXISTS ( \
                       SELECT 1 FROM outbox o \
                       WHERE o.aggregate = v.aggregate AND o.published_at IS NULL) \
                     THEN $7::timestamptz END \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY \
              AS v(event_id, aggregate, routing_key, body, n) \
         ORDER BY v.n \
         RETURNING id, event_id, created_at, locked_until IS NOT NULL AS handed, \
                   ($7::timestamptz IS NOT NULL AND locked_until IS NULL) AS blocked",
    )
    .bind::<sql::Array<sql::Text>, _>(column(|e| e.event.event_id().to_string()))
    .bind::<sql::Array<sql::Text>, _>(column(|e| e.aggregate.clone()))
    .bind::<sql::Array<sql::Text>, _>(column(|e| e.event.routing_key().to_string()))
    .bind::<sql::Array<sql::Text>, _>(column(|e| {
        String::from_utf8_lossy(e.event.body()).into_owned()
    }))
    .bind::<sql::Nullable<sql::Text>, _>(trace.get("traceparent").cloned())
    .bind::<sql::Nullable<sql::Text>, _>(trace.get("tracestate").cloned())
    .bind::<sql::Nullable<sql::Timestamptz>, _>(lease)
    .load(conn)
    .await?;
    let (enqueued, blocked) = Enqueued::from_written(written, events, &trace, lease);
    // Recorded before the commit, not after: a mark of the older row that
    // lands between this commit and `committed` would find no one to ring
    // for (a rollback leaves an entry that costs one early mark).
    link.blocked(blocked);
    if enqueued.unleased > 0 {
        diesel::sql_query(format!("NOTIFY {OUTBOX_CHANNEL}"))
            .execute(conn)
            .await?;
    }
    Ok(enqueued)
}

/// What a transaction body can fail with.
pub(super) enum TxError {
    Db(DieselError),
    Hook(PublishError),
    Store(StoreError),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

pub(super) fn db_error(error: DieselError) -> StoreError {
    match &error {
        DieselError::NotFound => StoreError::NotFound,
        DieselError::DatabaseError(kind, info) => match (kind, info.constraint_name()) {
            (DatabaseErrorKind::UniqueViolation, Some("users_email_key")) => StoreError::EmailTaken,
            (DatabaseErrorKind::UniqueViolation, Some("plans_code_key")) => {
                StoreError::PlanCodeTaken
            }
            (DatabaseErrorKind::UniqueViolation, Some("subscriptions_one_live_per_user")) => {
                StoreError::LiveSubscriptionExists
            }
            (DatabaseErrorKind::ForeignKeyViolation, Some("subscriptions_plan_code_fkey")) => {
                StoreError::PlanInUse
            }
            (DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
                StoreError::Unavailable(error.into())
            }
            // Cancelled by the pool's `statement_timeout` (SQLSTATE 57014,
            // which diesel reports as Unknown): the database is too slow or
            // a lock is held, not a bug in the request — 503, retry later.
            (DatabaseErrorKind::Unknown, _) if is_statement_timeout(info.message()) => {
                StoreError::Unavailable(error.into())
            }
            _ => StoreError::Unexpected(error.into()),
        },
        DieselError::BrokenTransactionManager => StoreError::Unavailable(error.into()),
        _ => StoreError::Unexpected(error.into()),
    }
}

/// PostgreSQL's message for a statement cancelled by `statement_timeout`
/// (the server's `lc_messages` must be English, PostgreSQL's default).
fn is_statement_timeout(message: &str) -> bool {
    message.starts_with("canceling statement due to statement timeout")
}

impl PgIdentityStore {
    pub(super) async fn conn(&self) -> Result<Object<diesel_async::AsyncPgConnection>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(anyhow::anyhow!("no database connection: {e}")))
    }

    /// After the commit of what [`enqueue`] wrote: hands the claimed rows to
    /// this process's relay, and wakes it for the others unless the listener
    /// is up (it hears this commit's NOTIFY too, and a second wake-up costs a
    /// second relay loop an empty claim; a listener that died unnoticed
    /// leaves the rows to the poll, 1 s). Rows claimed for a relay that
    /// stopped meanwhile are released for any relay to take.
    pub(super) async fn committed(&self, enqueued: Enqueued) {
        if let (Some(until), Some(last)) = (enqueued.until, enqueued.last_until)
            && let Err(rows) = self.link.push(enqueued.handed, until)
        {
            self.release(&rows, last).await;
        }
        if enqueued.unleased > 0 && !AtomicBool::load(&self.listening, Ordering::Relaxed) {
            self.link.wakeup().notify_one();
        }
    }

    /// Ends the hand-off claim of `rows` (written until `until` at the
    /// latest) and tells the relays; a claim a relay made since (later: it
    /// could claim only once the write's claim ran out) is kept, and on
    /// failure the claim simply runs out (the relay's lease).
    async fn release(&self, rows: &[OutboxEntry], until: DateTime<Utc>) {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let released = async {
            let mut conn = self.conn().await?;
            diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                .filter(outbox::published_at.is_null())
                .filter(outbox::locked_until.le(until))
                .set(outbox::locked_until.eq(None::<DateTime<Utc>>))
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
            diesel::sql_query(format!("NOTIFY {OUTBOX_CHANNEL}"))
                .execute(&mut conn)
                .await
                .map_err(db_error)
        };
        match released.await {
            Ok(_) => self.link.wakeup().notify_one(),
            Err(error) => {
                tracing::warn!(rows = ids.len(), error = %error, "outbox rows not released; their claim runs out");
            }
        }
    }

    pub(super) fn one<R, T>(row: Option<R>) -> Result<Option<T>, StoreError>
    where
        T: TryFrom<R, Error = StoreError>,
    {
        row.map(T::try_from).transpose()
    }

    /// An update or delete of one row by id: none touched means no such row.
    pub(super) fn found(rows: usize) -> Result<(), StoreError> {
        if rows == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    pub(super) async fn id_by_email(
        conn: &mut diesel_async::AsyncPgConnection,
        email: &Email,
    ) -> Result<Option<Uuid>, StoreError> {
        users::table
            .filter(lower(users::email).eq(email.as_str().to_lowercase()))
            .select(users::id)
            .first(conn)
            .await
            .optional()
            .map_err(db_error)
    }

    pub(super) fn many<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
    where
        T: TryFrom<R, Error = StoreError>,
    {
        rows.into_iter().map(T::try_from).collect()
    }
}

pub(super) fn tx_error(e: TxError) -> StoreError {
    match e {
        TxError::Db(e) => db_error(e),
        TxError::Store(e) => e,
        TxError::Hook(e) => StoreError::RolledBack(e),
    }
}
