//! Attempt limits under concurrency: OTP and password check slots, the
//! lock window, and resend slots.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use uuid::Uuid;

use crate::{
    domain::{
        account::{OtpChallenge, User},
        email_address::Email,
        otp::OtpCode,
    },
    ports::{IdentityStore, OtpSlot, PasswordSlot, ResendSlot, UserRef},
};

use super::{LIMIT, insert, now};

/// `guesses` (more than 5) OTP slot requests at once on one fresh account,
/// limit 5: exactly five are granted, counted 1 to 5, and the next is
/// refused with the user.
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

/// `guesses` (more than 5) password slot requests at once on one fresh
/// account: five granted, the rest `Locked` until `now + lock_for`, by
/// e-mail and by id alike; an unknown e-mail is `NoUser`.
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

/// The password lock window: at its end a new window opens (count 1, no
/// lock); a right password clears only the count its own slot left; a
/// released slot lifts the lock it set, and a stale release does nothing.
pub async fn a_lock_that_ran_out_opens_a_new_window(store: &dyn IdentityStore, prefix: &str) {
    let user = insert(store, prefix, "window").await;
    let at = now();
    let later = at + LIMIT.lock_for;
    a_lock_ends_at_its_end(store, user.id, at, later).await;
    a_right_password_clears_only_its_own_count(store, user.id, later).await;
    a_shed_check_gives_its_slot_back(store, prefix, at).await;
}

/// Takes `n` password slots for `user` at `at`.
async fn take_slots(store: &dyn IdentityStore, user: Uuid, at: DateTime<Utc>, n: usize) {
    for _ in 0..n {
        store
            .take_password_slot(UserRef::Id(user), at, LIMIT)
            .await
            .expect("slot");
    }
}

/// A password slot that must be granted.
async fn granted(store: &dyn IdentityStore, user: Uuid, at: DateTime<Utc>, why: &str) -> User {
    let PasswordSlot::Granted(user) = store
        .take_password_slot(UserRef::Id(user), at, LIMIT)
        .await
        .expect("slot")
    else {
        panic!("{why}");
    };
    user
}

/// The stored failure count and lock of `user`.
async fn lock_of(store: &dyn IdentityStore, user: Uuid) -> (u32, Option<DateTime<Utc>>) {
    let stored = store.user_by_id(user).await.expect("read").expect("user");
    (stored.failed_logins, stored.login_blocked_until)
}

/// Five checks lock the account; at the lock's end a new window opens, and
/// a right password clears it.
async fn a_lock_ends_at_its_end(
    store: &dyn IdentityStore,
    user: Uuid,
    at: DateTime<Utc>,
    later: DateTime<Utc>,
) {
    take_slots(store, user, at, 5).await;
    let after = granted(store, user, later, "the lock is over at its end").await;
    assert_eq!(
        (after.failed_logins, after.login_blocked_until),
        (1, None),
        "a new window"
    );
    store
        .clear_password_failures(user, after.failed_logins)
        .await
        .expect("clear");
    assert_eq!(lock_of(store, user).await, (0, None));
}

/// A right password clears only the count its own slot left: checks
/// others took while it was verified keep their count and their lock.
async fn a_right_password_clears_only_its_own_count(
    store: &dyn IdentityStore,
    user: Uuid,
    later: DateTime<Utc>,
) {
    let mine = granted(store, user, later, "a fresh window").await;
    take_slots(store, user, later, 4).await;
    store
        .clear_password_failures(user, mine.failed_logins)
        .await
        .expect("clear");
    assert_eq!(
        lock_of(store, user).await,
        (5, Some(later + LIMIT.lock_for)),
        "the lock others earned stays"
    );
}

/// A slot whose check could not run (shed) is given back, lifting the
/// lock it set; a stale release changes nothing.
async fn a_shed_check_gives_its_slot_back(
    store: &dyn IdentityStore,
    prefix: &str,
    at: DateTime<Utc>,
) {
    let other = insert(store, prefix, "release").await;
    take_slots(store, other.id, at, 4).await;
    let fifth = granted(store, other.id, at, "the fifth slot").await;
    store
        .release_password_slot(other.id, 3, LIMIT)
        .await
        .expect("stale release");
    store
        .release_password_slot(other.id, fifth.failed_logins, LIMIT)
        .await
        .expect("release");
    assert_eq!(lock_of(store, other.id).await, (4, None));
}

/// `requests` re-send requests at once after the cool-down: one granted,
/// with the unexpired code and `sent_at = now`; once released, the slot
/// is granted again at once; after expiry the fresh code replaces the old.
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
