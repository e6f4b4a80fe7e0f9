//! What links a process's outbox writes to its own relay (decision 70): the
//! doorbell rung after a commit, and the rows a write claimed for this
//! process as it wrote them, handed over at its commit so the relay
//! publishes them at once: no claim statement, no NOTIFY, no wait for a pass
//! under way. A row is handed over only when nothing older of its aggregate
//! is unpublished, and it carries the relay's lease in the store, so another
//! relay takes it only if this process dies (or is too slow) first.

use std::sync::Mutex;

use chrono::Duration;
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
    rows: Vec<OutboxEntry>,
    /// A write left a row to the claim because an older row of its
    /// aggregate was unpublished (perhaps one held here).
    blocked: bool,
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
    /// `lease` and hands them over at its commit.
    pub fn open(&self, lease: Duration) {
        self.state().lease = Some(lease);
    }

    /// The relay stops taking rows; returns those not taken yet (it
    /// publishes them before it ends). A write that claimed rows before this
    /// and commits after finds the link closed and releases them.
    pub fn close(&self) -> Vec<OutboxEntry> {
        let mut state = self.state();
        state.lease = None;
        std::mem::take(&mut state.rows)
    }

    /// The lease a write claims its rows with: `None` (leave them to the
    /// claim) when no relay takes rows or [`HANDOFF_CAP`] are waiting.
    pub fn lease(&self) -> Option<Duration> {
        let state = self.state();
        state.lease.filter(|_| state.rows.len() < HANDOFF_CAP)
    }

    /// Hands over the rows a write claimed, at its commit, in `id` order.
    ///
    /// # Errors
    ///
    /// The rows back when the link closed meanwhile: the caller releases
    /// their claim so that any relay takes them.
    pub fn push(&self, rows: Vec<OutboxEntry>) -> Result<(), Vec<OutboxEntry>> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut state = self.state();
        if state.lease.is_none() {
            return Err(rows);
        }
        state.rows.extend(rows);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// A write left a row behind an older unpublished one of its aggregate:
    /// the relay rings its own doorbell after its next mark.
    pub fn blocked(&self) {
        self.state().blocked = true;
    }

    /// Takes every row handed over so far (sorted by `id`), and whether a
    /// write was blocked since the last take.
    pub fn take(&self) -> (Vec<OutboxEntry>, bool) {
        let mut state = self.state();
        let mut rows = std::mem::take(&mut state.rows);
        rows.sort_by_key(|r| r.id);
        (rows, std::mem::take(&mut state.blocked))
    }

    /// Resolves once rows were handed over since the last take (at once if
    /// they were while no one waited).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}
