//! Batched acks for one consumer channel. Acking each e-mail alone made
//! RabbitMQ handle one ack frame per message; one `multiple` ack per run of
//! finished deliveries lets bare lapin consume 2.6–3.0× faster on the same
//! broker (docs/benchmarks.md). Deliveries finish out of order, so a
//! `multiple` ack only ever covers a contiguous run of settled tags; a
//! delivery that stays in flight (waiting on another delivery's lease) does
//! not hold the prefetch window: past a limit, or once nothing else is in
//! flight, or when the oldest held ack is older than `MAX_HOLD`, the
//! finished deliveries behind it are acked one by one.
//!
//! What a held ack risks: the channel or the process dies before it is
//! sent, and the broker redelivers a message that was already sent; the
//! `sent:` de-duplication record acks it as a duplicate without sending it
//! again, as for a delivery cut off between send and ack (DESIGN §10).

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use lapin::{
    Channel,
    options::{BasicAckOptions, BasicNackOptions},
};
use tokio::{
    sync::{mpsc, oneshot},
    time::MissedTickBehavior,
};

/// How long a finished delivery may wait for its ack while others are in
/// flight before a look sends it (the ticker looks every half of it, so it
/// goes out within 1.5 × this).
const MAX_HOLD: Duration = Duration::from_millis(50);

/// One frame to send. `multiple` acks every unacked tag up to `tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    Ack { tag: u64, multiple: bool },
    Requeue { tag: u64 },
}

/// Which tags are settled and which acks to send; no I/O, so the rules are
/// unit-tested on their own.
#[derive(Debug)]
pub struct AckPlan {
    /// A run this long is acked with one `multiple` frame.
    batch: usize,
    /// Finished deliveries held past this many are acked one by one.
    hold_limit: usize,
    /// The lowest tag not settled yet (tags of a channel start at 1).
    next: u64,
    /// Delivered, not finished.
    in_flight: usize,
    /// Finished, ack not sent.
    done: BTreeSet<u64>,
    /// Settled outside a run: nacked back to the queue, or acked alone.
    gone: BTreeSet<u64>,
    /// When the oldest held ack was held.
    since: Option<Instant>,
}

impl AckPlan {
    /// Batches a quarter of the prefetch and holds at most half of it, so
    /// held acks never starve the deliveries still to come.
    pub fn new(prefetch: u16) -> Self {
        let prefetch = usize::from(prefetch.max(1));
        Self {
            batch: (prefetch / 4).max(1),
            hold_limit: (prefetch / 2).max(1),
            next: 1,
            in_flight: 0,
            done: BTreeSet::new(),
            gone: BTreeSet::new(),
            since: None,
        }
    }

    pub fn delivered(&mut self) {
        self.in_flight += 1;
    }

    /// `tag` was handled and must be acked; returns the frames to send now.
    /// A tag already finished or requeued is ignored.
    pub fn finished(&mut self, tag: u64, now: Instant) -> Vec<Frame> {
        if self.settled(tag) {
            return Vec::new();
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.done.insert(tag);
        self.since.get_or_insert(now);
        self.take(now)
    }

    /// `tag` goes back to the queue: its nack comes before any run that
    /// passes over it, and it is never acked. A tag already finished or
    /// requeued is ignored (no frame: the broker would close the channel).
    pub fn requeue(&mut self, tag: u64, now: Instant) -> Vec<Frame> {
        if self.settled(tag) {
            return Vec::new();
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.gone.insert(tag);
        let mut frames = vec![Frame::Requeue { tag }];
        frames.extend(self.take(now));
        frames
    }

    /// The held acks that waited too long (a delivery in flight for long,
    /// and no other finishing to send them).
    pub fn stale(&mut self, now: Instant) -> Vec<Frame> {
        self.take(now)
    }

    fn settled(&self, tag: u64) -> bool {
        tag < self.next || self.done.contains(&tag) || self.gone.contains(&tag)
    }

    fn take(&mut self, now: Instant) -> Vec<Frame> {
        let force = self.in_flight == 0
            || self.done.len() >= self.hold_limit
            || self
                .since
                .is_some_and(|since| now.duration_since(since) >= MAX_HOLD);
        let mut acks = Vec::new();
        if let Some(top) = self.contiguous_top(force) {
            acks.push(Frame::Ack {
                tag: top,
                multiple: true,
            });
        }
        if force {
            // Acked alone, they are settled: a later run passes over them.
            for tag in std::mem::take(&mut self.done) {
                self.gone.insert(tag);
                acks.push(Frame::Ack {
                    tag,
                    multiple: false,
                });
            }
        }
        if self.done.is_empty() {
            self.since = None;
        }
        acks
    }

    /// Settles the run of tags from `next` that are all finished or settled
    /// alone, unless it holds fewer than `batch` acks (any will do when
    /// `force`); returns the highest finished tag in it, the one to ack
    /// with `multiple`. A run of nacked tags alone settles with no frame.
    fn contiguous_top(&mut self, force: bool) -> Option<u64> {
        let mut end = self.next;
        let mut acked = 0;
        loop {
            if self.done.contains(&end) {
                acked += 1;
            } else if !self.gone.contains(&end) {
                break;
            }
            end += 1;
        }
        if acked > 0 && !force && acked < self.batch {
            return None;
        }
        // `done` holds no tag under `next`: the run's are all of its first.
        let top = self.done.range(..end).next_back().copied();
        self.done = self.done.split_off(&end);
        self.gone = self.gone.split_off(&end);
        self.next = end;
        top
    }
}

/// A frame to send, or none: a barrier whose signal fires once everything
/// queued before it is sent.
type Queued = (Option<Frame>, Option<oneshot::Sender<()>>);

/// The ack plan of one channel, and the task that sends its frames in the
/// order they were planned: frames are queued under the plan's lock, so a
/// `multiple` ack never overtakes a lower one or a nack it passes over (the
/// broker would close the channel on a tag it no longer knows). Planning
/// and queueing are synchronous, so a caller cut off while it waits for its
/// frames (the shutdown's abandon) leaves no tag half-settled.
///
/// It sends on the `Channel` itself, not through each delivery's `Acker`:
/// safe because the broker connection never recovers a channel in place (a
/// new subscription gets a new channel and a new window).
pub struct AckWindow {
    plan: Mutex<AckPlan>,
    frames: mpsc::UnboundedSender<Queued>,
}

/// One delivery taken from the channel. Dropped unsettled (its task
/// panicked), it requeues the message so the window's count stays true.
pub struct Unsettled {
    window: Arc<AckWindow>,
    tag: u64,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        let tag = self.tag;
        self.window
            .plan_and_queue(|plan, now| plan.requeue(tag, now));
    }
}

impl AckWindow {
    pub fn start(channel: Channel, prefetch: u16, queue: &'static str) -> Arc<Self> {
        let (frames, queued) = mpsc::unbounded_channel();
        tokio::spawn(send_frames(channel, queued, queue));
        let window = Arc::new(Self {
            plan: Mutex::new(AckPlan::new(prefetch)),
            frames,
        });
        tokio::spawn(look_for_stale(Arc::downgrade(&window)));
        window
    }

    /// Counts a delivery as in flight until it is finished or requeued.
    pub fn delivered(self: &Arc<Self>, tag: u64) -> Unsettled {
        self.lock().delivered();
        Unsettled {
            window: self.clone(),
            tag,
        }
    }

    /// Acks `tag`, now or with a later run; waits until every frame queued
    /// so far is sent.
    pub async fn finished(&self, tag: u64) {
        self.plan_and_queue(|plan, now| plan.finished(tag, now));
        let _ = self.barrier().await;
    }

    /// Nacks `tag` back to its queue (unless it was already settled); waits
    /// until every frame queued so far is sent. If the nack is lost, the
    /// channel's end requeues the message all the same.
    pub async fn requeue(&self, tag: u64) {
        self.plan_and_queue(|plan, now| plan.requeue(tag, now));
        let _ = self.barrier().await;
    }

    /// Plans with `step` and queues its frames, both under the lock.
    fn plan_and_queue(&self, step: impl FnOnce(&mut AckPlan, Instant) -> Vec<Frame>) {
        let mut plan = self.lock();
        // The send fails only when the sender task is gone with its
        // channel: the broker then requeues every unacked message itself.
        for frame in step(&mut plan, Instant::now()) {
            let _ = self.frames.send((Some(frame), None));
        }
    }

    fn lock(&self) -> MutexGuard<'_, AckPlan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fires once every frame queued before it is sent.
    fn barrier(&self) -> oneshot::Receiver<()> {
        let (sent, done) = oneshot::channel();
        let _ = self.frames.send((None, Some(sent)));
        done
    }
}

/// Sends the acks held longer than `MAX_HOLD` when no delivery finishing
/// does it (the ones in flight are slow, the queue is idle); ends with the
/// window.
async fn look_for_stale(window: Weak<AckWindow>) {
    let mut tick = tokio::time::interval(MAX_HOLD / 2);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(window) = window.upgrade() else {
            return;
        };
        window.plan_and_queue(AckPlan::stale);
    }
}

/// Sends the planned frames in order until every `AckWindow` handle is gone.
async fn send_frames(
    channel: Channel,
    mut queued: mpsc::UnboundedReceiver<Queued>,
    queue: &'static str,
) {
    while let Some((frame, sent)) = queued.recv().await {
        let result = match frame {
            None => Ok(()),
            Some(Frame::Ack { tag, multiple }) => {
                channel.basic_ack(tag, BasicAckOptions { multiple }).await
            }
            Some(Frame::Requeue { tag }) => {
                channel
                    .basic_nack(
                        tag,
                        BasicNackOptions {
                            multiple: false,
                            requeue: true,
                        },
                    )
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(queue, ?frame, error = %e, "ack or nack failed; the broker redelivers the message (and it is de-duplicated)");
            metrics::counter!("email_consumer_errors_total", "queue" => queue, "kind" => "ack_failed").increment(1);
        }
        if let Some(sent) = sent {
            let _ = sent.send(());
        }
    }
}

#[cfg(test)]
mod tests;
