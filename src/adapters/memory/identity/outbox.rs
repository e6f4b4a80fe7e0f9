//! The in-memory outbox: the write of a change's events (and their hand-off,
//! decision 70), and as the relay sees it: claiming, marking, backlog and
//! purge.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use crate::ports::{OutboxBacklog, OutboxEntry, OutboxEvent, OutboxLink, StoreError};

use super::{InMemoryIdentityStore, OutboxRow, State};

impl State {
    /// Appends `events` to the outbox; the caller holds the lock that makes
    /// this part of its change. As on PostgreSQL (decision 70): while the
    /// relay takes rows, a row whose aggregate had no unpublished row before
    /// this call is written claimed and handed over. Returns how many rows
    /// are left to the claim (the caller wakes the relay for them).
    pub(super) fn enqueue(&mut self, events: &[OutboxEvent], link: &OutboxLink) -> usize {
        let trace = crate::adapters::bus::message::trace_text();
        let now = Utc::now();
        let lease = link.lease();
        let pending: HashSet<&str> = self
            .outbox
            .iter()
            .filter(|r| r.published_at.is_none())
            .map(|r| r.entry.aggregate.as_str())
            .collect();
        let claimed: Vec<bool> = events
            .iter()
            .map(|e| lease.is_some() && !pending.contains(e.aggregate.as_str()))
            .collect();
        let mut handed = Vec::new();
        for (e, claimed) in events.iter().zip(&claimed) {
            self.next_outbox_id += 1;
            let entry = OutboxEntry {
                id: self.next_outbox_id,
                aggregate: e.aggregate.clone(),
                event_id: e.event.event_id().to_string(),
                routing_key: e.event.routing_key().to_string(),
                body: String::from_utf8_lossy(e.event.body()).into_owned(),
                trace: trace.clone(),
                attempts: 0,
                created_at: now,
            };
            if *claimed {
                handed.push(entry.clone());
            }
            self.outbox.push(OutboxRow {
                entry,
                locked_until: lease.filter(|_| *claimed).map(|lease| now + lease),
                last_error: None,
                published_at: None,
            });
        }
        let unleased = events.len() - handed.len();
        if lease.is_some() {
            let blocked = events
                .iter()
                .zip(&claimed)
                .filter(|(_, claimed)| !**claimed);
            link.blocked(blocked.map(|(e, _)| e.aggregate.clone()).collect());
        }
        let pushed = match lease {
            Some(lease) => link.push(handed, now + lease),
            None => Ok(()),
        };
        if let Err(rows) = pushed {
            // The relay stopped since `lease()`: any relay may take them.
            for row in self.outbox.iter_mut().rev().take(events.len()) {
                if rows.iter().any(|r| r.id == row.entry.id) {
                    row.locked_until = None;
                }
            }
            return events.len();
        }
        unleased
    }
}

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
    if ids.is_empty() {
        return Ok(()); // as on PostgreSQL: no statement
    }
    #[cfg(test)]
    {
        let stall = store.lock().marks_stall_until.filter(|until| now < *until);
        if let Some(until) = stall {
            tokio::time::sleep((until - now).to_std().unwrap_or_default()).await;
        }
    }
    let mut state = store.lock();
    #[cfg(test)]
    if state.marks_fail_until.is_some_and(|until| now < until) {
        state.failed_marks.push(now);
        return Err(StoreError::Unavailable(anyhow::anyhow!(
            "marks fail (a test's fault)"
        )));
    }
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

#[cfg(test)]
impl InMemoryIdentityStore {
    /// Makes every mark (`outbox_published`) fail until `until`: a
    /// database refusing the relay's statements, on cue.
    pub(crate) fn fail_marks_until(&self, until: DateTime<Utc>) {
        self.lock().marks_fail_until = Some(until);
    }

    /// Makes every mark hang until `until`: a database that stalls.
    pub(crate) fn stall_marks_until(&self, until: DateTime<Utc>) {
        self.lock().marks_stall_until = Some(until);
    }

    /// When the marks failed by [`fail_marks_until`](Self::fail_marks_until)
    /// were tried.
    pub(crate) fn failed_marks(&self) -> Vec<DateTime<Utc>> {
        self.lock().failed_marks.clone()
    }
}
