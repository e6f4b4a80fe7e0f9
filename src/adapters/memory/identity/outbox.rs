//! The in-memory outbox as the relay sees it: claiming, marking, backlog
//! and purge.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use crate::ports::{OutboxBacklog, OutboxEntry, StoreError};

use super::InMemoryIdentityStore;

pub(super) async fn claim_outbox(
    store: &InMemoryIdentityStore,
    now: DateTime<Utc>,
    limit: u32,
    lease: Duration,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut state = store.lock();
    // Rows are in id order: the first unpublished row met for an
    // aggregate is its oldest; later ones wait for it.
    let mut seen = HashSet::new();
    let mut claimed = Vec::new();
    for row in state.outbox.iter_mut().filter(|r| r.published_at.is_none()) {
        if !seen.insert(row.entry.aggregate.clone()) {
            continue;
        }
        if row.locked_until.is_some_and(|until| until > now) {
            continue;
        }
        row.locked_until = Some(now + lease);
        claimed.push(row.entry.clone());
        if claimed.len() >= limit as usize {
            break;
        }
    }
    Ok(claimed)
}

pub(super) async fn outbox_published(
    store: &InMemoryIdentityStore,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut state = store.lock();
    for row in state
        .outbox
        .iter_mut()
        .filter(|r| ids.contains(&r.entry.id))
    {
        row.published_at = Some(now);
        row.locked_until = None;
    }
    Ok(())
}

pub(super) async fn outbox_failed(
    store: &InMemoryIdentityStore,
    id: i64,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut state = store.lock();
    if let Some(row) = state.outbox.iter_mut().find(|r| r.entry.id == id) {
        row.entry.attempts += 1;
        row.last_error = Some(error.to_owned());
        row.locked_until = Some(retry_at);
    }
    Ok(())
}

pub(super) async fn outbox_backlog(
    store: &InMemoryIdentityStore,
) -> Result<OutboxBacklog, StoreError> {
    let state = store.lock();
    let pending = state.outbox.iter().filter(|r| r.published_at.is_none());
    Ok(OutboxBacklog {
        pending: pending.clone().count() as u64,
        oldest: pending.map(|r| r.entry.created_at).min(),
    })
}

pub(super) async fn purge_outbox(
    store: &InMemoryIdentityStore,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let mut state = store.lock();
    // The oldest `limit` of the published rows older than `before`, as
    // PostgreSQL's `ORDER BY published_at LIMIT` picks them.
    let mut due: Vec<(DateTime<Utc>, i64)> = state
        .outbox
        .iter()
        .filter_map(|r| {
            r.published_at
                .filter(|at| *at < before)
                .map(|at| (at, r.entry.id))
        })
        .collect();
    due.sort_unstable();
    due.truncate(limit as usize);
    let forget: std::collections::HashSet<i64> = due.into_iter().map(|(_, id)| id).collect();
    state.outbox.retain(|r| !forget.contains(&r.entry.id));
    Ok(forget.len() as u64)
}
