//! What the topic files of the PostgreSQL store share: the connection and
//! row helpers, the outbox insert, and the mapping of database errors
//! (constraint names) to `StoreError`.

use std::sync::atomic::{AtomicBool, Ordering};

use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use diesel_async::{RunQueryDsl, pooled_connection::deadpool::Object};
use uuid::Uuid;

use crate::adapters::postgres::{
    models::NewOutboxRow,
    schema::{outbox, users},
};
use crate::{
    domain::email_address::Email,
    ports::{OutboxEvent, PublishError, StoreError},
};

use super::{OUTBOX_CHANNEL, PgIdentityStore, lower};

/// Writes `events` to the outbox on `conn` (inside the caller's
/// transaction), with the current span's trace context, and notifies the
/// relays: PostgreSQL delivers the NOTIFY at commit, and drops it with a
/// rollback.
pub(super) async fn enqueue(
    conn: &mut diesel_async::AsyncPgConnection,
    events: &[OutboxEvent],
) -> Result<(), DieselError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut trace = crate::adapters::bus::message::trace_text();
    let rows: Vec<NewOutboxRow> = events
        .iter()
        .map(|e| NewOutboxRow {
            event_id: e.event.event_id().to_string(),
            aggregate: e.aggregate.clone(),
            routing_key: e.event.routing_key().to_string(),
            body: String::from_utf8_lossy(e.event.body()).into_owned(),
            traceparent: trace.get("traceparent").cloned(),
            tracestate: trace.get("tracestate").cloned(),
        })
        .collect();
    trace.clear();
    diesel::insert_into(outbox::table)
        .values(&rows)
        .execute(conn)
        .await?;
    diesel::sql_query(format!("NOTIFY {OUTBOX_CHANNEL}"))
        .execute(conn)
        .await?;
    Ok(())
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

    /// Wakes this process's relay after a commit that wrote outbox rows
    /// (other processes hear the NOTIFY), unless the listener is up: it
    /// hears this commit's NOTIFY too, and a second wake-up costs a second
    /// relay loop an empty claim per commit (one pass takes the rows, the
    /// other finds them leased). A listener that died unnoticed leaves the
    /// rows to the poll (1 s).
    pub(super) fn wake_if(&self, events: usize) {
        if events > 0 && !AtomicBool::load(&self.listening, Ordering::Relaxed) {
            self.wakeup.notify_one();
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
