//! What links a process's outbox writes to its own relay (decision 70): the
//! doorbell rung after a commit, and the rows a write claimed for this
//! process as it wrote them, handed over at its commit so the relay
//! publishes them at once: no claim statement, no NOTIFY, no wait for a pass
//! under way. A row is handed over only when nothing older of its aggregate
//! is unpublished, and it carries the relay's lease in the store, so another
//! relay takes it only if this process dies (or is too slow) first.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use super::OutboxEntry;

/// Rows held for the relay at most: past this, writes leave their rows to
/// the claim (a relay that stopped taking must not grow memory for ever).
pub const HANDOFF_CAP: usize = 10_000;

/// One per store, the same on every call
/// ([`IdentityStore::outbox_link`](super::IdentityStore::outbox_link)).
#[derive(Default)]
pub struct OutboxLink {
    wakeup: Notify,
    ready: Notify,
    state: Mutex<Handoff>,
}

#[derive(Default)]
struct Handoff {
    /// `Some` while a relay takes rows.
    lease: Option<Duration>,
    /// What each write handed over, in the order of the pushes.
    pushes: std::collections::VecDeque<Push>,
    held: usize,
    /// Aggregates of which a write left a row to the claim because an
    /// older row was unpublished (perhaps one held here, or published and
    /// not yet marked), and since when.
    blocked: HashMap<String, DateTime<Utc>>,
}

/// The rows of one write and the end of their claim.
struct Push {
    rows: Vec<OutboxEntry>,
    until: DateTime<Utc>,
}

/// Rows taken from the link for publishing.
#[derive(Debug, Default)]
pub struct Take {
    /// By `id`; the rows of one write are never split between takes.
    pub rows: Vec<OutboxEntry>,
    /// When the first of their claims ends: publish and mark before it.
    pub until: Option<DateTime<Utc>>,
    /// Rows dropped because their claim was about to end: another relay
    /// may take them at any moment, so they are left to the claim.
    pub stale: usize,
}

impl OutboxLink {
    fn state(&self) -> std::sync::MutexGuard<'_, Handoff> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The relay's doorbell: notified after a commit that wrote rows left to
    /// the claim (here, or in another process when the PostgreSQL listener
    /// runs); kept if no one waits. The relay also polls.
    pub fn wakeup(&self) -> &Notify {
        &self.wakeup
    }

    /// A relay starts taking rows: from now on a write claims its rows for
    /// `lease` and hands them over at its commit. Rows still waiting from
    /// before (a pause) ring `ready` again: their ring may have been spent.
    pub fn open(&self, lease: Duration) {
        self.state().lease = Some(lease);
        self.ring_if_waiting();
    }

    /// Rings `ready` if rows wait to be taken: for a relay that spent a
    /// ring without taking them.
    pub fn ring_if_waiting(&self) {
        let waiting = !self.state().pushes.is_empty();
        if waiting {
            self.ready.notify_one();
        }
    }

    /// The relay stops taking rows. What was handed over stays to be taken;
    /// a write that claimed rows before this and commits after it finds the
    /// link closed and releases them.
    pub fn close(&self) {
        self.state().lease = None;
    }

    /// The lease a write claims its rows with: `None` (leave them to the
    /// claim) when no relay takes rows or [`HANDOFF_CAP`] are waiting.
    pub fn lease(&self) -> Option<Duration> {
        let state = self.state();
        state.lease.filter(|_| state.held < HANDOFF_CAP)
    }

    /// Hands over the rows a write claimed until `until`, at its commit.
    ///
    /// # Errors
    ///
    /// The rows back when the link closed meanwhile: the caller releases
    /// their claim so that any relay takes them.
    pub fn push(
        &self,
        rows: Vec<OutboxEntry>,
        until: DateTime<Utc>,
    ) -> Result<(), Vec<OutboxEntry>> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut state = self.state();
        if state.lease.is_none() {
            return Err(rows);
        }
        state.held += rows.len();
        state.pushes.push_back(Push { rows, until });
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Writes left rows of `aggregates` to the claim, behind an older
    /// unpublished row of each: the relay rings its own doorbell once it
    /// marked a row of one of them ([`unblock`](Self::unblock)).
    /// Entries older than a minute are forgotten (the older row was another
    /// process's: no mark here clears them, and its claim has ended).
    pub fn blocked(&self, aggregates: Vec<String>) {
        if aggregates.is_empty() {
            return;
        }
        let now = Utc::now();
        let mut state = self.state();
        state
            .blocked
            .retain(|_, since| now - *since < Duration::minutes(1));
        if state.blocked.len() >= HANDOFF_CAP {
            state.blocked.clear();
        }
        for aggregate in aggregates {
            state.blocked.insert(aggregate, now);
        }
    }

    /// Whether a write waits behind a row of one of `aggregates`.
    pub fn blocks(&self, aggregates: &HashSet<String>) -> bool {
        let state = self.state();
        state.blocked.keys().any(|a| aggregates.contains(a))
    }

    /// Rows of `aggregates` were marked published: forgets the writes
    /// blocked behind them; true when there were some (their rows are
    /// claimable now: ring the doorbell).
    pub fn unblock(&self, aggregates: &HashSet<String>) -> bool {
        let mut state = self.state();
        let before = state.blocked.len();
        state.blocked.retain(|a, _| !aggregates.contains(a));
        state.blocked.len() < before
    }

    /// Takes whole writes' rows, oldest push first, until at least `limit`
    /// rows (or all); drops those whose claim ends by `fresh_after`. Rows
    /// left behind ring `ready` again.
    pub fn take(&self, limit: usize, fresh_after: DateTime<Utc>) -> Take {
        let mut state = self.state();
        let mut take = Take::default();
        while take.rows.len() < limit.max(1) {
            let Some(push) = state.pushes.pop_front() else {
                break;
            };
            state.held -= push.rows.len();
            if push.until <= fresh_after {
                take.stale += push.rows.len();
                continue;
            }
            take.until = Some(take.until.map_or(push.until, |u| u.min(push.until)));
            take.rows.extend(push.rows);
        }
        let more = !state.pushes.is_empty();
        drop(state);
        if more {
            self.ready.notify_one();
        }
        take.rows.sort_by_key(|r| r.id);
        take
    }

    /// Resolves once rows were handed over since the last take (at once if
    /// they were while no one waited).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> OutboxEntry {
        OutboxEntry {
            id,
            aggregate: format!("user:{id}"),
            event_id: format!("evt_{id}"),
            routing_key: "email.verification.requested".into(),
            body: "{}".into(),
            trace: std::collections::BTreeMap::new(),
            attempts: 0,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_take_keeps_writes_whole_drops_claims_about_to_end_and_leaves_the_rest() {
        let link = OutboxLink::default();
        let now = Utc::now();
        let lease = Duration::seconds(30);
        assert!(link.push(vec![row(1)], now + lease).is_err(), "closed");
        link.open(lease);
        link.push(vec![row(1)], now + Duration::seconds(2)).unwrap();
        link.push(vec![row(3), row(2)], now + lease).unwrap();
        link.push(vec![row(4)], now + lease).unwrap();

        let first = link.take(2, now + Duration::seconds(15));
        let ids: Vec<i64> = first.rows.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [2, 3],
            "row 1 stale, rows 2 and 3 of one write together"
        );
        assert_eq!((first.stale, first.until), (1, Some(now + lease)));
        let second = link.take(2, now);
        assert_eq!(second.rows.len(), 1);
        assert!(link.take(2, now).rows.is_empty());
        link.close();
        assert!(link.lease().is_none());
        assert_eq!(link.push(vec![row(5)], now + lease).unwrap_err().len(), 1);
    }

    #[tokio::test]
    async fn rows_still_waiting_when_the_link_reopens_ring_ready_again() {
        let link = OutboxLink::default();
        let lease = Duration::seconds(30);
        link.open(lease);
        link.push(vec![row(1)], Utc::now() + lease).unwrap();
        link.ready().await; // the ring spent without a take (a pause)
        link.close();
        link.open(lease);

        let rang = tokio::time::timeout(std::time::Duration::from_secs(1), link.ready()).await;

        assert!(rang.is_ok(), "the waiting row rings again");
        assert_eq!(link.take(10, Utc::now()).rows.len(), 1);
    }

    #[test]
    fn a_blocked_write_is_released_by_a_mark_of_its_aggregate_only() {
        let link = OutboxLink::default();
        let set = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<HashSet<_>>();
        link.blocked(vec!["user:1".into()]);
        assert!(!link.blocks(&set(&["user:2"])));
        assert!(!link.unblock(&set(&["user:2"])), "another aggregate's mark");
        assert!(link.blocks(&set(&["user:1", "user:2"])));
        assert!(
            link.unblock(&set(&["user:1"])),
            "its aggregate's mark rings"
        );
        assert!(!link.unblock(&set(&["user:1"])), "once");
    }
}
