//! The ack plan's rules, alone and against a model of the broker's: a
//! frame for a tag it no longer holds would close the channel.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn ack(tag: u64, multiple: bool) -> Frame {
    Frame::Ack { tag, multiple }
}

fn deliver(plan: &mut AckPlan, n: usize) {
    for _ in 0..n {
        plan.delivered();
    }
}

#[test]
fn a_run_of_a_quarter_of_the_prefetch_goes_out_as_one_multiple_ack() {
    let mut plan = AckPlan::new(32);
    let now = Instant::now();
    deliver(&mut plan, 10);
    for tag in 1..8 {
        assert_eq!(plan.finished(tag, now), vec![], "tag {tag} held");
    }
    assert_eq!(plan.finished(8, now), vec![ack(8, true)]);
}

#[test]
fn the_last_delivery_in_flight_sends_every_held_ack() {
    let mut plan = AckPlan::new(32);
    let now = Instant::now();
    deliver(&mut plan, 3);
    assert_eq!(plan.finished(2, now), vec![]);
    assert_eq!(plan.finished(3, now), vec![]);
    assert_eq!(plan.finished(1, now), vec![ack(3, true)]);
}

#[test]
fn a_delivery_in_flight_for_long_does_not_hold_the_ones_behind_it() {
    let mut plan = AckPlan::new(32);
    let now = Instant::now();
    deliver(&mut plan, 20);
    // Tag 1 waits on a lease; 2..=17 finish: half the prefetch held.
    for tag in 2..17 {
        assert_eq!(plan.finished(tag, now), vec![]);
    }
    let acks = plan.finished(17, now);
    assert_eq!(acks, (2..=17).map(|t| ack(t, false)).collect::<Vec<_>>());
    // When tag 1 ends, its run passes over the tags acked alone.
    assert_eq!(plan.finished(18, now), vec![]);
    assert_eq!(plan.finished(1, now), vec![]);
    assert_eq!(plan.finished(19, now), vec![]);
    assert_eq!(plan.finished(20, now), vec![ack(20, true)]);
}

#[test]
fn held_acks_older_than_the_bound_go_out_on_the_next_look() {
    let mut plan = AckPlan::new(32);
    let start = Instant::now();
    deliver(&mut plan, 4);
    assert_eq!(plan.finished(2, start), vec![]);
    assert_eq!(plan.stale(start + MAX_HOLD / 2), vec![]);
    assert_eq!(plan.stale(start + MAX_HOLD), vec![ack(2, false)]);
    assert_eq!(plan.stale(start + MAX_HOLD * 3), vec![], "nothing held");
}

#[test]
fn a_requeued_tag_is_nacked_never_acked_and_does_not_block_a_run() {
    let mut plan = AckPlan::new(8);
    let now = Instant::now();
    deliver(&mut plan, 4);
    assert_eq!(plan.requeue(1, now), vec![Frame::Requeue { tag: 1 }]);
    assert_eq!(
        plan.finished(2, now),
        vec![],
        "one ack is under the batch of 2"
    );
    assert_eq!(plan.requeue(4, now), vec![Frame::Requeue { tag: 4 }]);
    assert_eq!(plan.finished(3, now), vec![ack(3, true)]);
}

#[test]
fn a_tag_settled_once_is_never_settled_again() {
    let mut plan = AckPlan::new(32);
    let now = Instant::now();
    deliver(&mut plan, 3);
    assert_eq!(plan.finished(2, now), vec![]);
    assert_eq!(plan.requeue(2, now), vec![], "finished: not nacked");
    assert_eq!(plan.requeue(1, now), vec![Frame::Requeue { tag: 1 }]);
    assert_eq!(plan.finished(1, now), vec![], "requeued: not acked");
    assert_eq!(
        plan.finished(3, now),
        vec![ack(3, true)],
        "1 gone, 2 and 3 acked"
    );
    assert_eq!(plan.finished(3, now), vec![]);
    assert_eq!(plan.requeue(2, now), vec![]);
}

#[test]
fn a_prefetch_of_one_acks_each_delivery_at_once() {
    let mut plan = AckPlan::new(1);
    let now = Instant::now();
    deliver(&mut plan, 2);
    assert_eq!(plan.finished(1, now), vec![ack(1, true)]);
    assert_eq!(plan.finished(2, now), vec![ack(2, true)]);
}

/// What the broker checks: every frame names an outstanding tag, and a
/// `multiple` frame settles every outstanding tag up to it.
struct Broker {
    outstanding: BTreeSet<u64>,
    acked: BTreeSet<u64>,
}

impl Broker {
    fn apply(&mut self, frames: &[Frame]) {
        for frame in frames {
            let (tag, settled): (u64, Vec<u64>) = match *frame {
                Frame::Requeue { tag } => (tag, vec![]),
                Frame::Ack {
                    tag,
                    multiple: true,
                } => (tag, self.outstanding.range(..=tag).copied().collect()),
                Frame::Ack { tag, .. } => (tag, vec![tag]),
            };
            assert!(self.outstanding.remove(&tag), "unknown tag in {frame:?}");
            for tag in settled {
                self.outstanding.remove(&tag);
                assert!(self.acked.insert(tag), "tag {tag} acked twice");
            }
        }
    }
}

proptest! {
    /// Any order of finishing and nacking, with prefetch-bounded
    /// deliveries: no frame the broker would refuse, a nacked tag never
    /// acked, at most half the prefetch finished and unacked, and every
    /// finished tag acked once nothing is in flight.
    #[test]
    fn any_order_acks_every_finished_tag_once_and_never_a_nacked_one(
        prefetch in 1u16..40,
        picks in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..10), 1..300),
    ) {
        let now = Instant::now();
        let mut plan = AckPlan::new(prefetch);
        let mut broker = Broker { outstanding: BTreeSet::new(), acked: BTreeSet::new() };
        let (mut next_tag, mut in_flight, mut finished) = (1u64, Vec::new(), BTreeSet::new());
        let mut nacked = BTreeSet::new();
        for (pick, what) in picks {
            // The broker delivers up to the prefetch of unsettled tags.
            while broker.outstanding.len() < usize::from(prefetch) && in_flight.len() < 16 {
                broker.outstanding.insert(next_tag);
                plan.delivered();
                in_flight.push(next_tag);
                next_tag += 1;
            }
            let tag = in_flight.swap_remove(pick.index(in_flight.len()));
            let acks = if what == 0 {
                nacked.insert(tag);
                plan.requeue(tag, now)
            } else {
                finished.insert(tag);
                plan.finished(tag, now)
            };
            broker.apply(&acks);
            let held = finished.difference(&broker.acked).count();
            prop_assert!(held < (usize::from(prefetch) / 2).max(1), "{} held", held);
        }
        for tag in in_flight.drain(..) {
            finished.insert(tag);
            let acks = plan.finished(tag, now);
            broker.apply(&acks);
        }
        prop_assert_eq!(&broker.acked, &finished);
        prop_assert!(broker.acked.is_disjoint(&nacked));
        prop_assert!(broker.outstanding.is_empty());
    }
}
