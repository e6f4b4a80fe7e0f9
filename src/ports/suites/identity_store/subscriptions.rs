//! Plans and subscriptions: optimistic plan edits, conditional activation,
//! one winner per transition, each due subscription swept once.

use std::sync::Arc;

use chrono::Duration;
use futures_util::future::join_all;
use uuid::Uuid;

use crate::{
    domain::{
        account::AccountStatus,
        billing::{PlanCode, Subscription, SubscriptionPatch, SubscriptionStatus},
        locale::Locale,
    },
    ports::{IdentityStore, ProfileChanges, StoreError, UserRef},
};

use super::{LIMIT, insert, now, plan, plan_named, subscriber, trial};

/// Two edits from one read of a plan: the first wins, the second is
/// `Conflict` and leaves the first's values; an unknown plan is `NotFound`.
pub async fn a_plan_edit_from_a_stale_read_is_refused(store: &dyn IdentityStore, prefix: &str) {
    let code = plan(store, prefix).await;
    let read = store
        .plan_by_code(&code)
        .await
        .expect("read")
        .expect("plan");
    let mut first = read.clone();
    first.name = "First".into();
    first.updated_at = read.updated_at + Duration::seconds(1);
    let mut second = read.clone();
    second.price_minor = 500;
    second.updated_at = read.updated_at + Duration::seconds(2);
    store
        .update_plan(&first, read.updated_at)
        .await
        .expect("first edit");
    assert!(matches!(
        store.update_plan(&second, read.updated_at).await,
        Err(StoreError::Conflict)
    ));
    let stored = store
        .plan_by_id(read.id)
        .await
        .expect("read")
        .expect("plan");
    assert_eq!((stored.name.as_str(), stored.price_minor), ("First", 0));
    let mut ghost = read.clone();
    ghost.id = Uuid::new_v4();
    assert!(matches!(
        store.update_plan(&ghost, read.updated_at).await,
        Err(StoreError::NotFound)
    ));
}

/// Two activations of one account with its code, at once with twenty
/// password slots and profile edits: one wins, one is `Conflict`, none of
/// the other writes fails or undoes it, and one live subscription exists;
/// a wrong code is `Conflict`.
pub async fn activation_is_conditional_and_survives_concurrent_writes(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
) {
    let user = insert(store.as_ref(), prefix, "activate").await;
    let code = plan(store.as_ref(), prefix).await;
    let at = now();
    // Two verifications and a burst of failed logins and profile edits at once.
    let verifications = join_all((0..2).map(|_| {
        let store = store.clone();
        let s = trial(&user, &code, at + Duration::days(14));
        async move {
            store
                .activate_with_subscription(user.id, "123456", &s, at, &[])
                .await
        }
    }));
    let noise = join_all((0..20).map(|i| {
        let store = store.clone();
        async move {
            if i % 2 == 0 {
                store
                    .take_password_slot(UserRef::Id(user.id), at, LIMIT)
                    .await
                    .map(drop)
            } else {
                let changes = ProfileChanges {
                    locale: Some(Locale::Vi),
                    ..ProfileChanges::default()
                };
                store.update_profile(user.id, &changes, at).await.map(drop)
            }
        }
    }));
    let (verified, noise) = tokio::join!(verifications, noise);
    assert!(noise.iter().all(Result::is_ok), "{noise:?}");
    let won = verified.iter().filter(|r| r.is_ok()).count();
    let conflicts = verified
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict)))
        .count();
    assert_eq!((won, conflicts), (1, 1), "{verified:?}");
    let stored = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(stored.status, AccountStatus::Active, "no write reverted it");
    assert_eq!(stored.otp, None);
    assert_eq!(stored.locale, Locale::Vi, "profile edits kept");
    let live = store.live_subscription(user.id).await.expect("read");
    assert!(live.is_some(), "one live subscription");
    // A wrong code never activates.
    let other = insert(store.as_ref(), prefix, "wrong-code").await;
    let s = trial(&other, &code, at + Duration::days(14));
    assert!(matches!(
        store
            .activate_with_subscription(other.id, "000000", &s, at, &[])
            .await,
        Err(StoreError::Conflict)
    ));
}

/// Ten transitions of one trial (cancel and upgrade) at once: one wins,
/// nine are `Conflict`, and the winner's row is what is stored; an
/// unknown subscription is `NotFound`.
pub async fn racing_transitions_have_exactly_one_winner(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
) {
    let s = subscriber(store.as_ref(), prefix, "race", now() + Duration::days(3)).await;
    let at = now();
    let mut cancel = SubscriptionPatch::new(
        SubscriptionStatus::Trialing,
        SubscriptionStatus::Cancelled,
        at,
    );
    cancel.cancelled_at = Some(at);
    cancel.cancellation_reason = Some("user_requested".into());
    let mut upgrade =
        SubscriptionPatch::new(SubscriptionStatus::Trialing, SubscriptionStatus::Active, at);
    upgrade.period_start = Some(at);
    upgrade.period_end = Some(at + Duration::days(30));
    let patches: Vec<SubscriptionPatch> = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                cancel.clone()
            } else {
                upgrade.clone()
            }
        })
        .collect();
    let results = join_all(patches.iter().map(|p| {
        let store = store.clone();
        async move { store.transition_subscription(s.id, p, &[]).await }
    }))
    .await;
    let winners: Vec<&Subscription> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict)))
        .count();
    assert_eq!((winners.len(), conflicts), (1, 9), "{results:?}");
    let stored = store
        .subscription_by_id(s.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(&stored, winners[0], "the winner's write is what is stored");
    assert!(matches!(
        store
            .transition_subscription(Uuid::new_v4(), &cancel, &[])
            .await,
        Err(StoreError::NotFound)
    ));
}

/// `due` subscriptions past their trial end and four sweeps in batches of
/// three at once: each subscription is moved exactly once. The sweeps
/// cancel every subscription due in the store, not only the suite's.
pub async fn simultaneous_sweeps_move_each_subscription_once(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
    due: usize,
) {
    let ended = now() - Duration::minutes(1);
    let mut ids = Vec::new();
    for i in 0..due {
        ids.push(
            subscriber(store.as_ref(), prefix, &format!("due{i}"), ended)
                .await
                .id,
        );
    }
    let at = now();
    let rule = move |s: &Subscription| {
        Some(crate::ports::SweepMove {
            patch: SubscriptionPatch::new(s.status, SubscriptionStatus::Cancelled, at),
            outbox: Vec::new(),
        })
    };
    // Small batches, so the sweeps interleave.
    let sweeps = join_all((0..4).map(|_| {
        let store = store.clone();
        async move {
            let mut moved = Vec::new();
            loop {
                let batch = store.sweep_due(at, 3, &rule).await.expect("sweep");
                if batch.is_empty() {
                    return moved;
                }
                moved.extend(batch.into_iter().map(|s| s.subscription.id));
            }
        }
    }))
    .await;
    let mut moved: Vec<Uuid> = sweeps
        .into_iter()
        .flatten()
        .filter(|id| ids.contains(id))
        .collect();
    moved.sort_unstable();
    let mut expected = ids.clone();
    expected.sort_unstable();
    assert_eq!(moved, expected, "every due subscription moved exactly once");
}

/// A subscription must name a plan that exists (PostgreSQL's foreign key
/// from `subscriptions.plan_code`): an activation or a move to an unknown
/// plan (say, deleted a moment before) is `PlanInUse` and writes nothing.
pub async fn a_subscription_to_an_unknown_plan_is_refused(store: &dyn IdentityStore, prefix: &str) {
    let user = insert(store, prefix, "ghost-plan").await;
    let ghost = PlanCode::parse("no-such-plan").expect("plan code");
    let at = now();
    let s = trial(&user, &ghost, at + Duration::days(14));
    assert!(matches!(
        store
            .activate_with_subscription(user.id, "123456", &s, at, &[])
            .await,
        Err(StoreError::PlanInUse)
    ));
    let still = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(still.status, AccountStatus::Unverified);
    assert!(
        store
            .live_subscription(user.id)
            .await
            .expect("read")
            .is_none()
    );

    let live = subscriber(store, prefix, "ghost-move", at + Duration::days(14)).await;
    let mut patch = SubscriptionPatch::new(live.status, SubscriptionStatus::Active, at);
    patch.plan_code = Some(ghost);
    assert!(matches!(
        store.transition_subscription(live.id, &patch, &[]).await,
        Err(StoreError::PlanInUse)
    ));
    let kept = store
        .subscription_by_id(live.id)
        .await
        .expect("read")
        .expect("subscription");
    assert_eq!(
        (kept.status, &kept.plan_code),
        (SubscriptionStatus::Trialing, &live.plan_code)
    );
}

/// `rounds` times, an activation onto a fresh plan and that plan's deletion
/// at once: exactly one of the two succeeds (the other is `PlanInUse`), and
/// the plan exists exactly when the subscription does.
pub async fn a_plan_deleted_while_a_user_subscribes_to_it_has_one_winner(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
    rounds: usize,
) {
    for round in 0..rounds {
        let user = insert(store.as_ref(), prefix, &format!("race-plan-{round}")).await;
        let code = plan_named(store.as_ref(), &format!("r{round}-{prefix}")).await;
        let plan = store
            .plan_by_code(&code)
            .await
            .expect("read")
            .expect("plan");
        let at = now();
        let s = trial(&user, &code, at + Duration::days(14));
        let (activated, deleted) = tokio::join!(
            tokio::spawn({
                let store = store.clone();
                async move {
                    store
                        .activate_with_subscription(user.id, "123456", &s, at, &[])
                        .await
                }
            }),
            tokio::spawn({
                let store = store.clone();
                async move { store.delete_plan(plan.id).await }
            })
        );
        let (activated, deleted) = (activated.expect("task"), deleted.expect("task"));
        assert!(
            activated.is_ok() != deleted.is_ok(),
            "round {round}: exactly one wins, got {activated:?} and {deleted:?}"
        );
        assert!(matches!(
            activated.as_ref().err().or(deleted.as_ref().err()),
            Some(StoreError::PlanInUse)
        ));
        let plan_left = store.plan_by_code(&code).await.expect("read").is_some();
        let live = store
            .live_subscription(user.id)
            .await
            .expect("read")
            .is_some();
        assert_eq!(plan_left, live, "round {round}");
    }
}
