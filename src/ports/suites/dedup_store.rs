//! The `DedupStore` contract (DESIGN §4, §10: the e-mail lease), runnable
//! against any adapter. Leases of a few hundred milliseconds stand in for
//! the real one, so the suite takes about a second.

use std::{sync::Arc, time::Duration};

use crate::ports::{Claim, DedupStore, Marked};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
const SENT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn key(prefix: &str, name: &str) -> String {
    format!("smap:email:sent:contract-{prefix}-{name}")
}

/// Waits until a `SHORT` lease has certainly ended.
async fn past_short_lease() {
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
}

/// Runs every check below, in order, and panics at the first broken
/// promise. `prefix` keeps its keys (`smap:email:sent:contract-<prefix>-*`)
/// apart from other tests using the same store; the keys must not exist
/// yet (a unique prefix per run, or a fresh store). Needs a Tokio runtime
/// and takes about two seconds (it sleeps past short leases).
pub async fn run_all(store: Arc<dyn DedupStore>, prefix: &str) {
    racing_owners_get_one_lease_and_the_others_are_told_busy(store.clone(), prefix, 16).await;
    a_replayed_claim_is_recognised_as_its_own(store.as_ref(), prefix).await;
    sent_answers_every_later_claim(store.as_ref(), prefix).await;
    release_frees_only_the_owners_lease(store.as_ref(), prefix).await;
    an_expired_lease_can_be_claimed_and_its_old_owner_cannot_release_it(store.as_ref(), prefix)
        .await;
    sent_outlives_the_lease(store.as_ref(), prefix).await;
    a_late_sender_still_records_sent(store.as_ref(), prefix).await;
}

/// `owners` claims by different owners on one free key, at once: exactly
/// one gets `Acquired`, every other `Busy` with a time left in
/// `(0, lease]`. Spawns `owners` tasks.
pub async fn racing_owners_get_one_lease_and_the_others_are_told_busy(
    store: Arc<dyn DedupStore>,
    prefix: &str,
    owners: usize,
) {
    let key = key(prefix, "race");
    let claims = (0..owners).map(|i| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.claim(&key, &format!("owner-{i}"), LONG).await })
    });
    let mut acquired = 0;
    for claim in futures_util::future::join_all(claims).await {
        match claim.expect("task").expect("claim") {
            Claim::Acquired => acquired += 1,
            Claim::Busy { expires_in } => assert!(
                expires_in > Duration::ZERO && expires_in <= LONG,
                "the loser learns when the lease ends: {expires_in:?}"
            ),
            other => panic!("a racing loser must be told busy, not {other:?}"),
        }
    }
    assert_eq!(acquired, 1, "exactly one owner gets the lease");
}

/// The lease's owner claiming again gets `Mine`; another owner, `Busy`.
pub async fn a_replayed_claim_is_recognised_as_its_own(store: &dyn DedupStore, prefix: &str) {
    let key = key(prefix, "replay");
    assert_eq!(
        store.claim(&key, "a", LONG).await.expect("claim"),
        Claim::Acquired
    );
    assert_eq!(
        store.claim(&key, "a", LONG).await.expect("claim"),
        Claim::Mine,
        "the same owner claiming again is its own claim replayed"
    );
    assert!(matches!(
        store.claim(&key, "b", LONG).await.expect("claim"),
        Claim::Busy { .. }
    ));
}

/// After `mark_sent` (`Recorded`, and `Recorded` again when replayed) every
/// claim, the owner's included, gets `Sent`, and `release` deletes nothing.
pub async fn sent_answers_every_later_claim(store: &dyn DedupStore, prefix: &str) {
    let key = key(prefix, "sent");
    store.claim(&key, "a", LONG).await.expect("claim");
    assert_eq!(
        store.mark_sent(&key, "a", SENT_TTL).await.expect("mark"),
        Marked::Recorded
    );
    assert_eq!(
        store.mark_sent(&key, "a", SENT_TTL).await.expect("mark"),
        Marked::Recorded,
        "a replayed mark is its own"
    );
    for owner in ["a", "b"] {
        assert_eq!(
            store.claim(&key, owner, LONG).await.expect("claim"),
            Claim::Sent
        );
    }
    assert!(
        !store.release(&key, "a").await.expect("release"),
        "a sent key is not a lease to release"
    );
    assert_eq!(
        store.claim(&key, "c", LONG).await.expect("claim"),
        Claim::Sent
    );
}

/// `release` by another owner returns `false` and keeps the lease; by the
/// owner it returns `true` (once) and frees the key for the next claim.
pub async fn release_frees_only_the_owners_lease(store: &dyn DedupStore, prefix: &str) {
    let key = key(prefix, "release");
    store.claim(&key, "a", LONG).await.expect("claim");
    assert!(!store.release(&key, "b").await.expect("release"));
    assert!(matches!(
        store.claim(&key, "b", LONG).await.expect("claim"),
        Claim::Busy { .. }
    ));
    assert!(store.release(&key, "a").await.expect("release"));
    assert!(
        !store.release(&key, "a").await.expect("release"),
        "a replayed release deletes nothing more"
    );
    assert_eq!(
        store.claim(&key, "b", LONG).await.expect("claim"),
        Claim::Acquired
    );
}

/// A lease left by a killed owner ends: after it, another owner gets
/// `Acquired`, and the old owner's `release` deletes nothing.
pub async fn an_expired_lease_can_be_claimed_and_its_old_owner_cannot_release_it(
    store: &dyn DedupStore,
    prefix: &str,
) {
    let key = key(prefix, "expiry");
    assert_eq!(
        store.claim(&key, "dead", SHORT).await.expect("claim"),
        Claim::Acquired
    );
    match store.claim(&key, "b", LONG).await.expect("claim") {
        Claim::Busy { expires_in } => assert!(expires_in <= SHORT, "{expires_in:?}"),
        other => panic!("busy while the lease lasts, not {other:?}"),
    }
    past_short_lease().await;
    assert_eq!(
        store.claim(&key, "b", LONG).await.expect("claim"),
        Claim::Acquired,
        "a lease left by a killed owner ends"
    );
    assert!(!store.release(&key, "dead").await.expect("release"));
    assert!(matches!(
        store.claim(&key, "c", LONG).await.expect("claim"),
        Claim::Busy { .. }
    ));
}

/// `sent` lasts its own TTL, not the lease's: a claim after the lease
/// would have ended still gets `Sent`.
pub async fn sent_outlives_the_lease(store: &dyn DedupStore, prefix: &str) {
    let key = key(prefix, "outlives");
    store.claim(&key, "a", SHORT).await.expect("claim");
    store.mark_sent(&key, "a", SENT_TTL).await.expect("mark");
    past_short_lease().await;
    assert_eq!(
        store.claim(&key, "b", LONG).await.expect("claim"),
        Claim::Sent
    );
}

/// A sender whose lease ran out still records `sent` (`LeaseLost`),
/// whether or not another owner took the key meanwhile; that other owner
/// then learns it sent a second e-mail (`SentByAnother`).
pub async fn a_late_sender_still_records_sent(store: &dyn DedupStore, prefix: &str) {
    // Nobody took the expired lease: the late sender's mark stands.
    let alone = key(prefix, "late-alone");
    store.claim(&alone, "slow", SHORT).await.expect("claim");
    past_short_lease().await;
    assert_eq!(
        store
            .mark_sent(&alone, "slow", SENT_TTL)
            .await
            .expect("mark"),
        Marked::LeaseLost
    );
    assert_eq!(
        store.claim(&alone, "b", LONG).await.expect("claim"),
        Claim::Sent
    );

    // Another owner took it: the e-mail went out all the same, so `sent` is
    // recorded, and the other owner learns that it sent a second one.
    let taken = key(prefix, "late-taken");
    store.claim(&taken, "slow", SHORT).await.expect("claim");
    past_short_lease().await;
    assert_eq!(
        store.claim(&taken, "b", LONG).await.expect("claim"),
        Claim::Acquired
    );
    assert_eq!(
        store
            .mark_sent(&taken, "slow", SENT_TTL)
            .await
            .expect("mark"),
        Marked::LeaseLost
    );
    assert_eq!(
        store.claim(&taken, "c", LONG).await.expect("claim"),
        Claim::Sent
    );
    assert_eq!(
        store.mark_sent(&taken, "b", SENT_TTL).await.expect("mark"),
        Marked::SentByAnother
    );
    assert!(!store.release(&taken, "b").await.expect("release"));
}
