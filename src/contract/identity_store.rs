//! The `IdentityStore` contract for the rules that must hold under
//! concurrency (DESIGN §10), runnable against any adapter: each check fires
//! its requests at once and counts what the store granted. The in-memory
//! adapter runs it in the unit tests, PostgreSQL in the integration tests.

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use futures_util::future::join_all;
use uuid::Uuid;

use crate::{
    domain::{
        account::{AccountStatus, OtpChallenge, PasswordHash, Role, Session, User},
        billing::{PlanCode, Subscription, SubscriptionPatch, SubscriptionStatus},
        email_address::Email,
        locale::Locale,
        otp::OtpCode,
    },
    domain::{
        events::{EmailVerificationPayload, EventData, EventEnvelope, EventId, SealedEvent},
        timestamp::Timestamp,
    },
    ports::{
        IdentityStore, OtpSlot, OutboxEntry, OutboxEvent, PasswordLimit, PasswordSlot,
        ProfileChanges, ResendSlot, StoreError, UserRef,
    },
};

const LIMIT: PasswordLimit = PasswordLimit {
    max_checks: 5,
    lock_for: Duration::seconds(300),
};
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

/// Now, at the precision PostgreSQL keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn unverified(email: &str, now: DateTime<Utc>) -> User {
    User {
        id: Uuid::new_v4(),
        email: Email::parse(email).expect("contract e-mails are valid"),
        password_hash: PasswordHash(HASH.to_owned()),
        full_name: None,
        locale: Locale::En,
        role: Role::User,
        status: AccountStatus::Unverified,
        otp: Some(OtpChallenge::new(OtpCode::from_number(123_456), now)),
        failed_logins: 0,
        login_blocked_until: None,
        created_at: now,
        updated_at: now,
    }
}

async fn insert(store: &dyn IdentityStore, prefix: &str, name: &str) -> User {
    let user = unverified(&format!("{prefix}-{name}@example.com"), now());
    store
        .insert_user_then(&user, Box::pin(async { Ok(()) }))
        .await
        .expect("insert user");
    user
}

/// A free plan to hang subscriptions on (plan codes are shared).
async fn plan(store: &dyn IdentityStore, prefix: &str) -> PlanCode {
    let code: String = format!("c-{prefix}")
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    let code = PlanCode::parse(&code).expect("a plan code");
    if store.plan_by_code(&code).await.expect("plan").is_none() {
        let at = now();
        let plan = crate::domain::billing::Plan {
            id: Uuid::new_v4(),
            code: code.clone(),
            name: "Contract".into(),
            description: None,
            price_minor: 0,
            currency: "USD".into(),
            billing_cycle: crate::domain::billing::BillingCycle::Monthly,
            created_at: at,
            updated_at: at,
        };
        store.insert_plan(&plan).await.expect("insert plan");
    }
    code
}

fn trial(user: &User, code: &PlanCode, ends: DateTime<Utc>) -> Subscription {
    let at = now();
    Subscription {
        id: Uuid::new_v4(),
        user_id: user.id,
        plan_code: code.clone(),
        status: SubscriptionStatus::Trialing,
        trial_start: Some(ends - Duration::days(14)),
        trial_end: Some(ends),
        period_start: None,
        period_end: None,
        cancelled_at: None,
        cancellation_reason: None,
        created_at: at,
        updated_at: at,
    }
}

/// An active account with a trial ending at `ends`.
async fn subscriber(
    store: &dyn IdentityStore,
    prefix: &str,
    name: &str,
    ends: DateTime<Utc>,
) -> Subscription {
    let user = insert(store, prefix, name).await;
    let code = plan(store, prefix).await;
    let s = trial(&user, &code, ends);
    store
        .activate_with_subscription(user.id, "123456", &s, now(), &[])
        .await
        .expect("activate");
    s
}

/// Runs every check; `prefix` (letters, digits and `-`) keeps its rows apart from other tests using the same store.
pub async fn run_all(store: Arc<dyn IdentityStore>, prefix: &str) {
    otp_checks_take_at_most_five_slots_at_once(store.clone(), prefix, 60).await;
    password_checks_take_at_most_five_slots_at_once(store.clone(), prefix, 30).await;
    a_lock_that_ran_out_opens_a_new_window(store.as_ref(), prefix).await;
    simultaneous_resends_take_one_slot(store.clone(), prefix, 20).await;
    activation_is_conditional_and_survives_concurrent_writes(store.clone(), prefix).await;
    racing_transitions_have_exactly_one_winner(store.clone(), prefix).await;
    simultaneous_sweeps_move_each_subscription_once(store.clone(), prefix, 12).await;
    sessions_end_on_logout_password_change_and_expiry(store.as_ref(), prefix).await;
    a_plan_edit_from_a_stale_read_is_refused(store.as_ref(), prefix).await;
    the_outbox_hands_out_each_aggregate_in_order_and_each_row_once(store.clone(), prefix).await;
}

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

fn verification(user: &User) -> SealedEvent {
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
/// out to concurrent relays once, one aggregate at a time in the order
/// written, and back again after a failure only from its retry time.
pub async fn the_outbox_hands_out_each_aggregate_in_order_and_each_row_once(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
) {
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
    let at = now();
    let lease = Duration::seconds(30);
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
        .iter()
        .find(|e| e.event_id == ours[0])
        .expect("a1 claimed");
    assert_eq!(
        a1_row.body.as_bytes(),
        a1.body(),
        "{prefix}: the body as sealed"
    );
    assert_eq!(a1_row.aggregate, format!("user:{}", a.id));
    let backlog = store.outbox_backlog().await.expect("backlog");
    assert!(backlog.pending >= 3 && backlog.oldest.is_some());

    store
        .outbox_published(&[a1_row.id], at)
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
    let purged = store
        .purge_outbox(at + Duration::seconds(1))
        .await
        .expect("purge");
    assert!(purged >= 1, "{prefix}: the published row is forgotten");
}

pub async fn otp_checks_take_at_most_five_slots_at_once(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
    guesses: usize,
) {
    let user = insert(store.as_ref(), prefix, "otp").await;
    let at = now();
    let slots = join_all((0..guesses).map(|_| {
        let store = store.clone();
        let email = user.email.clone();
        async move { store.take_otp_slot(&email, at, 5).await.expect("slot") }
    }))
    .await;
    let granted: Vec<u32> = slots
        .iter()
        .filter_map(|s| match s {
            OtpSlot::Granted(u) => u.otp.as_ref().map(|o| o.attempts),
            OtpSlot::Refused(_) => None,
        })
        .collect();
    let mut attempts = granted.clone();
    attempts.sort_unstable();
    assert_eq!(
        attempts,
        vec![1, 2, 3, 4, 5],
        "five slots, each counted once"
    );
    let after = store.take_otp_slot(&user.email, at, 5).await.expect("slot");
    assert!(matches!(after, OtpSlot::Refused(Some(_))), "{after:?}");
}

pub async fn password_checks_take_at_most_five_slots_at_once(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
    guesses: usize,
) {
    let user = insert(store.as_ref(), prefix, "password").await;
    let at = now();
    let slots = join_all((0..guesses).map(|_| {
        let store = store.clone();
        let email = user.email.clone();
        async move {
            store
                .take_password_slot(UserRef::Email(&email), at, LIMIT)
                .await
                .expect("slot")
        }
    }))
    .await;
    let granted = slots
        .iter()
        .filter(|s| matches!(s, PasswordSlot::Granted(_)))
        .count();
    let locked = slots
        .iter()
        .filter(|s| matches!(s, PasswordSlot::Locked { until } if *until == at + LIMIT.lock_for))
        .count();
    assert_eq!(
        (granted, locked),
        (5, guesses - 5),
        "5 checks, then locked for the window"
    );
    let by_id = store
        .take_password_slot(UserRef::Id(user.id), at, LIMIT)
        .await
        .expect("slot");
    assert!(matches!(by_id, PasswordSlot::Locked { .. }), "{by_id:?}");
    let nobody = Email::parse(&format!("{prefix}-nobody@example.com")).expect("email");
    assert!(matches!(
        store
            .take_password_slot(UserRef::Email(&nobody), at, LIMIT)
            .await
            .expect("slot"),
        PasswordSlot::NoUser
    ));
}

pub async fn a_lock_that_ran_out_opens_a_new_window(store: &dyn IdentityStore, prefix: &str) {
    let user = insert(store, prefix, "window").await;
    let at = now();
    for _ in 0..5 {
        store
            .take_password_slot(UserRef::Id(user.id), at, LIMIT)
            .await
            .expect("slot");
    }
    let later = at + LIMIT.lock_for;
    let PasswordSlot::Granted(after) = store
        .take_password_slot(UserRef::Id(user.id), later, LIMIT)
        .await
        .expect("slot")
    else {
        panic!("the lock is over at its end");
    };
    assert_eq!(
        (after.failed_logins, after.login_blocked_until),
        (1, None),
        "a new window"
    );
    store
        .clear_password_failures(user.id, after.failed_logins)
        .await
        .expect("clear");
    let stored = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(
        (stored.failed_logins, stored.login_blocked_until),
        (0, None)
    );

    // A right password clears only the count its own slot left: checks
    // others took while it was verified keep their count and their lock.
    let PasswordSlot::Granted(mine) = store
        .take_password_slot(UserRef::Id(user.id), later, LIMIT)
        .await
        .expect("slot")
    else {
        panic!("a fresh window");
    };
    for _ in 0..4 {
        store
            .take_password_slot(UserRef::Id(user.id), later, LIMIT)
            .await
            .expect("slot");
    }
    store
        .clear_password_failures(user.id, mine.failed_logins)
        .await
        .expect("clear");
    let stored = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(
        (stored.failed_logins, stored.login_blocked_until),
        (5, Some(later + LIMIT.lock_for)),
        "the lock others earned stays"
    );

    // A slot whose check could not run (shed) is given back, lifting the
    // lock it set; a stale release changes nothing.
    let other = insert(store, prefix, "release").await;
    for _ in 0..4 {
        store
            .take_password_slot(UserRef::Id(other.id), at, LIMIT)
            .await
            .expect("slot");
    }
    let PasswordSlot::Granted(fifth) = store
        .take_password_slot(UserRef::Id(other.id), at, LIMIT)
        .await
        .expect("slot")
    else {
        panic!("the fifth slot");
    };
    store
        .release_password_slot(other.id, 3, LIMIT)
        .await
        .expect("stale release");
    store
        .release_password_slot(other.id, fifth.failed_logins, LIMIT)
        .await
        .expect("release");
    let stored = store
        .user_by_id(other.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(
        (stored.failed_logins, stored.login_blocked_until),
        (4, None)
    );
}

pub async fn simultaneous_resends_take_one_slot(
    store: Arc<dyn IdentityStore>,
    prefix: &str,
    requests: usize,
) {
    let user = insert(store.as_ref(), prefix, "resend").await;
    let later = now() + Duration::seconds(61);
    let fresh = OtpChallenge::new(OtpCode::from_number(654_321), later);
    let slots = join_all((0..requests).map(|_| {
        let store = store.clone();
        let fresh = fresh.clone();
        async move {
            store
                .take_resend_slot(user.id, later, Duration::seconds(60), 5, &fresh, &|_, _| {
                    Vec::new()
                })
                .await
                .expect("slot")
        }
    }))
    .await;
    let granted: Vec<&OtpChallenge> = slots
        .iter()
        .filter_map(|s| match s {
            ResendSlot::Granted(c, _) => Some(c),
            ResendSlot::Refused(_) => None,
        })
        .collect();
    assert_eq!(granted.len(), 1, "one re-send of {requests}");
    assert_eq!(
        (granted[0].code.as_str(), granted[0].sent_at),
        ("123456", later),
        "the unexpired code, sent now"
    );
    // Given back (its e-mail failed), the slot can be taken again at once.
    store
        .release_resend_slot(user.id, later, Duration::seconds(60))
        .await
        .expect("release");
    let again = store
        .take_resend_slot(user.id, later, Duration::seconds(60), 5, &fresh, &|_, _| {
            Vec::new()
        })
        .await
        .expect("slot");
    assert!(matches!(again, ResendSlot::Granted(..)), "{again:?}");
    // An expired code is replaced by the fresh one.
    let much_later = later + Duration::minutes(11);
    let fresh = OtpChallenge::new(OtpCode::from_number(111_222), much_later);
    let ResendSlot::Granted(replaced, _) = store
        .take_resend_slot(
            user.id,
            much_later,
            Duration::seconds(60),
            5,
            &fresh,
            &|_, _| Vec::new(),
        )
        .await
        .expect("slot")
    else {
        panic!("the cool-down is over");
    };
    assert_eq!(replaced, fresh);
}

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

pub async fn sessions_end_on_logout_password_change_and_expiry(
    store: &dyn IdentityStore,
    prefix: &str,
) {
    let user = insert(store, prefix, "sessions").await;
    let at = now();
    let (a, b) = (
        Session::new(Uuid::new_v4(), user.id, at),
        Session::new(Uuid::new_v4(), user.id, at),
    );
    store
        .insert_session(&a, &user.password_hash)
        .await
        .expect("session");
    store
        .insert_session(&b, &user.password_hash)
        .await
        .expect("session");
    let found = store.session_user(a.id, at).await.expect("read");
    assert_eq!(found.map(|u| u.id), Some(user.id));
    assert!(
        store
            .session_user(a.id, a.expires_at)
            .await
            .expect("read")
            .is_none(),
        "expired"
    );

    store.delete_session(a.id).await.expect("logout");
    store.delete_session(a.id).await.expect("twice is fine");
    assert!(
        store.session_user(a.id, at).await.expect("read").is_none(),
        "logged out"
    );
    assert!(
        store.session_user(b.id, at).await.expect("read").is_some(),
        "others stay"
    );

    let c = Session::new(Uuid::new_v4(), user.id, at);
    let new_hash = PasswordHash("$argon2id$new".into());
    assert!(
        matches!(
            store
                .change_password(user.id, &new_hash, &new_hash, &c, at)
                .await,
            Err(StoreError::Conflict)
        ),
        "only from the hash that was checked"
    );
    store
        .change_password(user.id, &user.password_hash, &new_hash, &c, at)
        .await
        .expect("change");
    assert!(
        store.session_user(b.id, at).await.expect("read").is_none(),
        "earlier sessions end"
    );
    assert!(
        store.session_user(c.id, at).await.expect("read").is_some(),
        "the new one lives"
    );
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .expect("read")
            .expect("user")
            .password_hash,
        new_hash
    );
    let gone = store
        .delete_expired_sessions(c.expires_at)
        .await
        .expect("cleanup");
    assert!(gone >= 1);
    assert!(
        store.session_user(c.id, at).await.expect("read").is_none(),
        "forgotten"
    );
}
