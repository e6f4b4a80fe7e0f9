//! The `IdentityStore` contract for the rules that must hold under
//! concurrency (DESIGN §10), runnable against any adapter: each check fires
//! its requests at once and counts what the store granted. The in-memory
//! adapter runs it in the unit tests, PostgreSQL in the integration tests.

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{AccountStatus, OtpChallenge, PasswordHash, Role, User},
        billing::{PlanCode, Subscription, SubscriptionStatus},
        email_address::Email,
        locale::Locale,
        otp::OtpCode,
    },
    ports::{IdentityStore, PasswordLimit},
};

mod limits;
mod outbox;
mod sessions;
mod subscriptions;

pub use limits::*;
pub use outbox::*;
pub use sessions::*;
pub use subscriptions::*;

const LIMIT: PasswordLimit = PasswordLimit {
    max_checks: 5,
    lock_for: Duration::seconds(300),
};
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

/// Now, at the precision PostgreSQL keeps.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn unverified(email: &str, now: DateTime<Utc>) -> User {
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
    plan_named(store, &format!("c-{prefix}")).await
}

/// The plan `name` (lower-cased, cut to a valid code), created if missing.
async fn plan_named(store: &dyn IdentityStore, name: &str) -> PlanCode {
    let code: String = name
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

/// Runs every check, in order, and panics at the first broken promise.
/// The store must be fresh, or at least hold no outbox row (the purge
/// counts every published one) and no account `<prefix>-*@example.com`; no relay or sweep may run on it
/// meanwhile. `prefix` (letters, digits and `-`) names the suite's
/// accounts and its plan (`c-<prefix>`, lower-cased). Needs a Tokio runtime; the
/// concurrent checks mean something only on a multi-threaded one.
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
    a_subscription_to_an_unknown_plan_is_refused(store.as_ref(), prefix).await;
    a_plan_deleted_while_a_user_subscribes_to_it_has_one_winner(store.clone(), prefix, 6).await;
    the_outbox_hands_out_each_aggregate_in_order_and_each_row_once(store.clone(), prefix).await;
    rows_written_while_a_relay_takes_them_are_handed_over(store.as_ref(), prefix).await;
}
