//! The outbox on PostgreSQL, as the relay sees it: claiming, marking,
//! backlog and purge, plus the `LISTEN` task that wakes the relay.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use diesel::{prelude::*, sql_types as sql};
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::adapters::postgres::{models::OutboxRow, schema::outbox};
use crate::ports::{OutboxBacklog, OutboxEntry, StoreError};

use super::{OUTBOX_CHANNEL, PgIdentityStore, support::db_error};

impl PgIdentityStore {
    /// Listens on the outbox channel on a connection of its own (a pooled
    /// one would go back to the pool) and wakes the relay on every NOTIFY,
    /// from this process or another; reconnects after a loss, until `stop`.
    pub fn spawn_listener(
        &self,
        url: String,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let link = self.link.clone();
        let listening = self.listening.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            loop {
                match diesel_async::AsyncPgConnection::establish(&url).await {
                    Ok(mut conn) => {
                        let listen = diesel::sql_query(format!("LISTEN {OUTBOX_CHANNEL}"))
                            .execute(&mut conn)
                            .await;
                        if let Err(error) = listen {
                            tracing::warn!(error = %error, "outbox LISTEN failed; polling only");
                        } else {
                            let mut stream = std::pin::pin!(conn.notifications_stream());
                            // From here this process's commits reach the
                            // relay through the stream (see `committed`). One
                            // that committed before LISTEN took effect but
                            // read the flag after this line woke nobody:
                            // one pass for it.
                            listening.store(true, Ordering::Relaxed);
                            link.wakeup().notify_one();
                            loop {
                                tokio::select! {
                                    () = stop.cancelled() => {
                                        listening.store(false, Ordering::Relaxed);
                                        return;
                                    }
                                    n = stream.next() => match n {
                                        Some(Ok(_)) => link.wakeup().notify_one(),
                                        Some(Err(error)) => {
                                            tracing::warn!(error = %error, "outbox listener lost its connection");
                                            break;
                                        }
                                        None => break,
                                    },
                                }
                            }
                            listening.store(false, Ordering::Relaxed);
                            // This process's commits since the loss woke
                            // nobody (the flag was still set): one pass.
                            link.wakeup().notify_one();
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "outbox listener cannot connect; polling only");
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
        })
    }
}

pub(super) async fn claim_outbox(
    store: &PgIdentityStore,
    now: DateTime<Utc>,
    limit: u32,
    lease: Duration,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut conn = store.conn().await?;
    // Only the oldest unpublished row of each aggregate is a candidate
    // (order per aggregate); rows another relay is claiming right now
    // are skipped, not waited for, and a claimed row carries a lease.
    // Planned on every call on purpose (`sql_query` is never prepared):
    // a prepared claim gets PostgreSQL's generic plan after five runs, and
    // one made while the outbox was nearly empty (a nested-loop anti-join)
    // took 75 s once 10 000 events were pending — an outage's backlog
    // before autovacuum's next ANALYZE (decision 68).
    let rows: Vec<OutboxRow> = diesel::sql_query(
        "UPDATE outbox SET locked_until = $2 \
         WHERE id IN ( \
           SELECT o.id FROM outbox o \
           WHERE o.published_at IS NULL \
             AND (o.locked_until IS NULL OR o.locked_until <= $1) \
             AND NOT EXISTS (SELECT 1 FROM outbox older \
                             WHERE older.aggregate = o.aggregate \
                               AND older.published_at IS NULL AND older.id < o.id) \
           ORDER BY o.id LIMIT $3 \
           FOR UPDATE SKIP LOCKED) \
         RETURNING id, event_id, aggregate, routing_key, body, traceparent, tracestate, \
                   created_at, attempts",
    )
    .bind::<sql::Timestamptz, _>(now)
    .bind::<sql::Timestamptz, _>(now + lease)
    .bind::<sql::BigInt, _>(i64::from(limit))
    .load(&mut conn)
    .await
    .map_err(db_error)?;
    let mut entries: Vec<OutboxEntry> = rows
        .into_iter()
        .map(|r| {
            let mut trace = std::collections::BTreeMap::new();
            if let Some(tp) = r.traceparent {
                trace.insert("traceparent".to_owned(), tp);
            }
            if let Some(ts) = r.tracestate {
                trace.insert("tracestate".to_owned(), ts);
            }
            OutboxEntry {
                id: r.id,
                aggregate: r.aggregate,
                event_id: r.event_id,
                routing_key: r.routing_key,
                body: r.body,
                trace,
                attempts: u32::try_from(r.attempts).unwrap_or(0),
                created_at: r.created_at,
            }
        })
        .collect();
    entries.sort_by_key(|e| e.id);
    Ok(entries)
}

pub(super) async fn outbox_published(
    store: &PgIdentityStore,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut conn = store.conn().await?;
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::published_at.eq(now),
            outbox::locked_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn outbox_failed(
    store: &PgIdentityStore,
    id: i64,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    diesel::update(outbox::table.find(id))
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(error),
            outbox::locked_until.eq(retry_at),
        ))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn outbox_backlog(store: &PgIdentityStore) -> Result<OutboxBacklog, StoreError> {
    let mut conn = store.conn().await?;
    let (pending, oldest): (i64, Option<DateTime<Utc>>) = outbox::table
        .filter(outbox::published_at.is_null())
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(outbox::created_at),
        ))
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(OutboxBacklog {
        pending: u64::try_from(pending).unwrap_or(0),
        oldest,
    })
}

pub(super) async fn purge_outbox(
    store: &PgIdentityStore,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let mut conn = store.conn().await?;
    // One bounded statement (the `outbox_published` index finds the oldest):
    // a purge after a long outage must not run into `statement_timeout`
    // or hold the relay's connection for long.
    let n = diesel::sql_query(
        "DELETE FROM outbox WHERE id IN ( \
           SELECT id FROM outbox \
           WHERE published_at IS NOT NULL AND published_at < $1 \
           ORDER BY published_at LIMIT $2 \
           FOR UPDATE SKIP LOCKED)",
    )
    .bind::<sql::Timestamptz, _>(before)
    .bind::<sql::BigInt, _>(i64::from(limit))
    .execute(&mut conn)
    .await
    .map_err(db_error)?;
    Ok(n as u64)
}
