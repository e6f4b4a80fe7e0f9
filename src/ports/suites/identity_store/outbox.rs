//! The transactional outbox: rows written with their change, handed out
//! once, one aggregate at a time in order, retried from their retry time.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use uuid::Uuid;

use crate::{
    domain::account::User,
    domain::{
        events::{EmailVerificationPayload, EventData, EventEnvelope, EventId, SealedEvent},
        timestamp::Timestamp,
    },
    ports::{IdentityStore, OutboxEntry, OutboxEvent, StoreError},
};

use super::{now, unverified};

pub(crate) fn verification(user: &User) -> SealedEvent {
    let otp = user.otp.clone().expect("contract users have an OTP");
    EventEnvelope::new(
        EventId::from_uuid(Uuid::new_v4()),
        Timestamp::new(now()),
        EventData::EmailVerificationRequested(EmailVerificationPayload {
            user_id: user.id,
            recipient: user.email.clone(),
            otp_code: otp.code,
            locale: user.locale,
            expires_at: Timestamp::new(otp.expires_at),
        }),
    )
    .seal()
    .expect("a small event")
}

/// Rows are written with the change (a failed write leaves none), handed
/// out to eight concurrent relays once, one aggregate at a time in the
/// order written, with the body as sealed; a failed row comes back only
/// from its retry time; published rows are purged, a bounded batch a call. Expects no other
/// unpublished row in the store (its claims count every row handed out).
pub async fn the_outbox_hands_out_each_aggregate_in_order_and_each_row_once(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
) {
    let (a, a1, ours, lost) = rows_are_written_with_their_change(store.as_ref(), prefix).await;
    let at = now();
    let lease = Duration::seconds(30);
    let a1_row =
        concurrent_relays_get_each_first_row_once(&store, prefix, &ours, &lost, at, lease).await;
    assert_eq!(
        a1_row.body.as_bytes(),
        a1.body(),
        "{prefix}: the body as sealed"
    );
    assert_eq!(a1_row.aggregate, format!("user:{}", a.id));
    a_failed_row_waits_for_its_retry_time(store.as_ref(), prefix, &ours, a1_row.id, at, lease)
        .await;
}

/// Two rows for user a, one for user b, and a rolled-back write (a twin
/// e-mail) that must leave none. Returns a, a1, the ids of a1, a2, b1 and
/// the lost event.
async fn rows_are_written_with_their_change(
    store: &dyn IdentityStore,
    prefix: &str,
) -> (User, SealedEvent, [String; 3], SealedEvent) {
    let a = unverified(&format!("{prefix}-outbox-a@example.com"), now());
    let b = unverified(&format!("{prefix}-outbox-b@example.com"), now());
    let (a1, a2, b1) = (verification(&a), verification(&a), verification(&b));
    let ours = [a1.event_id(), a2.event_id(), b1.event_id()].map(|id| id.to_string());
    store
        .insert_user_enqueue(
            &a,
            &[
                OutboxEvent::user(a.id, a1.clone()),
                OutboxEvent::user(a.id, a2.clone()),
            ],
        )
        .await
        .expect("insert a");
    store
        .insert_user_enqueue(&b, &[OutboxEvent::user(b.id, b1.clone())])
        .await
        .expect("insert b");
    let twin = unverified(&format!("{prefix}-OUTBOX-a@example.com"), now());
    let lost = verification(&twin);
    assert!(matches!(
        store
            .insert_user_enqueue(&twin, &[OutboxEvent::user(twin.id, lost.clone())])
            .await,
        Err(StoreError::EmailTaken)
    ));
    (a, a1, ours, lost)
}

/// Eight relays claim at once: a1 and b1 once each; a2 waits for a1.
async fn concurrent_relays_get_each_first_row_once(
    store: &Arc<dyn IdentityStore>,
    prefix: &str,
    ours: &[String; 3],
    lost: &SealedEvent,
    at: DateTime<Utc>,
    lease: Duration,
) -> OutboxEntry {
    let claims = join_all((0..8).map(|_| {
        let store = store.clone();
        async move { store.claim_outbox(at, 100, lease).await.expect("claim") }
    }))
    .await;
    let claimed: Vec<OutboxEntry> = claims.into_iter().flatten().collect();
    let mut ids: Vec<String> = claimed.iter().map(|e| e.event_id.clone()).collect();
    ids.sort();
    let mut first = vec![ours[0].clone(), ours[2].clone()];
    first.sort();
    assert_eq!(ids, first, "{prefix}: a1 and b1 once each; a2 waits for a1");
    assert!(
        !ids.contains(&lost.event_id().to_string()),
        "a rolled-back write left a row"
    );
    let a1_row = claimed
        .into_iter()
        .find(|e| e.event_id == ours[0])
        .expect("a1 claimed");
    let backlog = store.outbox_backlog().await.expect("backlog");
    assert!(backlog.pending >= 3 && backlog.oldest.is_some());
    a1_row
}

/// Once a1 is published a2 is next; after a failure it comes back only
/// from its retry time; published rows are purged, a bounded batch a call.
async fn a_failed_row_waits_for_its_retry_time(
    store: &dyn IdentityStore,
    prefix: &str,
    ours: &[String; 3],
    a1_row: i64,
    at: DateTime<Utc>,
    lease: Duration,
) {
    store
        .outbox_published(&[a1_row], at)
        .await
        .expect("published");
    // b1 is still leased; a2 is now the oldest of its aggregate.
    let next = store.claim_outbox(at, 100, lease).await.expect("claim");
    let next: Vec<&OutboxEntry> = next.iter().filter(|e| ours.contains(&e.event_id)).collect();
    assert_eq!(next.len(), 1, "{prefix}: {next:?}");
    assert_eq!(next[0].event_id, ours[1]);
    store
        .outbox_failed(next[0].id, "broker down", at + Duration::hours(1))
        .await
        .expect("failed");
    let later = at + Duration::minutes(10);
    let retried = store.claim_outbox(later, 100, lease).await.expect("claim");
    assert!(
        retried.iter().all(|e| e.event_id != ours[1]),
        "{prefix}: not before its retry time"
    );
    assert!(
        retried.iter().any(|e| e.event_id == ours[2]),
        "{prefix}: b1's lease ran out: claimable again"
    );
    let much_later = at + Duration::hours(2);
    let retried = store
        .claim_outbox(much_later, 100, lease)
        .await
        .expect("claim");
    let a2_row = retried
        .iter()
        .find(|e| e.event_id == ours[1])
        .expect("a2 after its retry time");
    assert_eq!(a2_row.attempts, 1);
    published_rows_are_purged_in_bounded_batches(store, prefix, a2_row.id, at).await;
}

/// a1 was published at `at`; a2 is published a second later, b1 stays
/// unpublished: purges forget the published rows, at most `limit` a call,
/// and never b1.
async fn published_rows_are_purged_in_bounded_batches(
    store: &dyn IdentityStore,
    prefix: &str,
    a2_row: i64,
    at: DateTime<Utc>,
) {
    store
        .outbox_published(&[a2_row], at + Duration::seconds(1))
        .await
        .expect("published");
    let pending = store.outbox_backlog().await.expect("backlog").pending;
    let before = at + Duration::seconds(2);
    let mut purged = Vec::new();
    for _ in 0..3 {
        purged.push(store.purge_outbox(before, 1).await.expect("purge"));
    }
    assert_eq!(purged, [1, 1, 0], "{prefix}: one row a call, then none");
    assert_eq!(
        store.outbox_backlog().await.expect("backlog").pending,
        pending,
        "{prefix}: unpublished rows are kept"
    );
}

/// Decision 70: while a relay takes rows ([`crate::ports::OutboxLink`]), a
/// write hands its rows over claimed (both rows of one write, in order),
/// unless an older row of their aggregate is unpublished: that one is left
/// to the claim, in order, and the take says a write was blocked. A handed
/// row is claimable once its lease ran out (its process died); after the
/// link closes, writes are left to the claim. Leaves the link closed.
pub async fn rows_written_while_a_relay_takes_them_are_handed_over(
    store: &dyn IdentityStore,
    prefix: &str,
) {
    let link = store.outbox_link();
    let lease = Duration::seconds(30);
    link.open(lease);
    let c = unverified(&format!("{prefix}-handoff-c@example.com"), now());
    let events = [verification(&c), verification(&c), verification(&c)];
    let ids = events.clone().map(|e| e.event_id().to_string());
    let written = now();
    store
        .insert_user_enqueue(
            &c,
            &[
                OutboxEvent::user(c.id, events[0].clone()),
                OutboxEvent::user(c.id, events[1].clone()),
            ],
        )
        .await
        .expect("insert c");
    let take = link.take(usize::MAX, written);
    let aggregate_c: std::collections::HashSet<String> =
        take.rows.iter().map(|r| r.aggregate.clone()).collect();
    let (handed, blocked) = (take.rows, link.blocks(&aggregate_c));
    assert!(
        take.until.is_some_and(|u| u > written),
        "{prefix}: claimed ahead"
    );
    let handed_ids: Vec<&str> = handed.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(handed_ids, [&ids[0], &ids[1]], "{prefix}: both, in order");
    assert!(!blocked, "{prefix}: nothing older was pending");
    assert_eq!(
        handed[0].body.as_bytes(),
        events[0].body(),
        "{prefix}: as sealed"
    );
    let claimed = store
        .claim_outbox(written, 100, lease)
        .await
        .expect("claim");
    assert!(
        ours(&claimed, &ids).is_empty(),
        "{prefix}: handed rows are claimed"
    );

    // A later write of aggregate c waits behind c1 and c2, for the claim.
    let d = unverified(&format!("{prefix}-handoff-d@example.com"), now());
    store
        .insert_user_enqueue(&d, &[OutboxEvent::user(c.id, events[2].clone())])
        .await
        .expect("insert d");
    let (handed, blocked) = (
        link.take(usize::MAX, written).rows,
        link.blocks(&aggregate_c),
    );
    assert!(
        handed.is_empty() && blocked,
        "{prefix}: c3 left to the claim, behind c"
    );
    assert!(link.unblock(&aggregate_c), "{prefix}: released by c's mark");
    handed_rows_outlive_their_process_in_order(store, prefix, &ids, written + lease).await;
    a_closed_link_leaves_rows_to_the_claim(store, prefix).await;
}

/// The process that held c1 and c2 died: once their claim ran out (at
/// `lapsed`), the claim hands out c1, c2, c3 in turn.
async fn handed_rows_outlive_their_process_in_order(
    store: &dyn IdentityStore,
    prefix: &str,
    ids: &[String; 3],
    lapsed: DateTime<Utc>,
) {
    let lease = Duration::seconds(30);
    let mut at = lapsed + Duration::seconds(5);
    for id in ids {
        let claimed = store.claim_outbox(at, 100, lease).await.expect("claim");
        assert_eq!(
            ours(&claimed, ids),
            [id.as_str()],
            "{prefix}: one at a time, in order"
        );
        let row = claimed.iter().find(|r| &r.event_id == id).expect("the row");
        store
            .outbox_published(&[row.id], at)
            .await
            .expect("published");
        at += lease + Duration::seconds(5);
    }
}

/// Closed: a write is left to the claim, claimable at once.
async fn a_closed_link_leaves_rows_to_the_claim(store: &dyn IdentityStore, prefix: &str) {
    let link = store.outbox_link();
    link.close();
    let e = unverified(&format!("{prefix}-handoff-e@example.com"), now());
    let e1 = verification(&e);
    store
        .insert_user_enqueue(&e, &[OutboxEvent::user(e.id, e1.clone())])
        .await
        .expect("insert e");
    assert!(
        link.take(usize::MAX, now()).rows.is_empty(),
        "{prefix}: closed, nothing handed"
    );
    let claimed = store
        .claim_outbox(now(), 100, Duration::seconds(30))
        .await
        .expect("claim");
    let e1_row = claimed
        .iter()
        .find(|r| r.event_id == e1.event_id().to_string())
        .unwrap_or_else(|| panic!("{prefix}: e1 claimable at once"));
    store
        .outbox_published(&[e1_row.id], now())
        .await
        .expect("published");
}

/// The event ids of `rows` that are among `ids`.
fn ours<'a>(rows: &'a [OutboxEntry], ids: &[String]) -> Vec<&'a str> {
    rows.iter()
        .filter(|e| ids.contains(&e.event_id))
        .map(|e| e.event_id.as_str())
        .collect()
}
