//! Plans and subscriptions in memory: activation with a first subscription,
//! the plan catalogue, subscription transitions and the sweep.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{AccountStatus, User},
        billing::{Plan, PlanCode, Subscription, SubscriptionPatch, SubscriptionStatus},
    },
    ports::{OutboxEvent, StoreError, SweepRule, SweptSubscription},
};

use super::InMemoryIdentityStore;

pub(super) async fn activate_with_subscription(
    store: &InMemoryIdentityStore,
    user: Uuid,
    code: &str,
    subscription: &Subscription,
    now: DateTime<Utc>,
    outbox: &[OutboxEvent],
) -> Result<User, StoreError> {
    let mut state = store.lock();
    let current = state.users.get(&user).ok_or(StoreError::NotFound)?;
    let holds_code = current
        .otp
        .as_ref()
        .is_some_and(|o| o.code.as_str() == code);
    if current.status != AccountStatus::Unverified || !holds_code {
        return Err(StoreError::Conflict);
    }
    if state
        .subscriptions
        .values()
        .any(|s| s.user_id == user && s.is_live())
    {
        return Err(StoreError::LiveSubscriptionExists);
    }
    if !state.has_plan(&subscription.plan_code) {
        return Err(StoreError::PlanInUse);
    }
    state
        .subscriptions
        .insert(subscription.id, subscription.clone());
    let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
    user.status = AccountStatus::Active;
    user.otp = None;
    user.updated_at = now;
    let user = user.clone();
    let unleased = state.enqueue(outbox, &store.link);
    drop(state);
    store.wake_if(unleased);
    Ok(user)
}

pub(super) async fn plans(store: &InMemoryIdentityStore) -> Result<Vec<Plan>, StoreError> {
    let mut plans: Vec<Plan> = store.lock().plans.values().cloned().collect();
    plans.sort_by(|a, b| a.price_minor.cmp(&b.price_minor).then(a.code.cmp(&b.code)));
    Ok(plans)
}

pub(super) async fn plan_by_id(
    store: &InMemoryIdentityStore,
    id: Uuid,
) -> Result<Option<Plan>, StoreError> {
    Ok(store.lock().plans.get(&id).cloned())
}

pub(super) async fn plan_by_code(
    store: &InMemoryIdentityStore,
    code: &PlanCode,
) -> Result<Option<Plan>, StoreError> {
    Ok(store
        .lock()
        .plans
        .values()
        .find(|p| &p.code == code)
        .cloned())
}

pub(super) async fn insert_plan(
    store: &InMemoryIdentityStore,
    plan: &Plan,
) -> Result<(), StoreError> {
    let mut state = store.lock();
    if state.plans.values().any(|p| p.code == plan.code) {
        return Err(StoreError::PlanCodeTaken);
    }
    state.plans.insert(plan.id, plan.clone());
    Ok(())
}

pub(super) async fn update_plan(
    store: &InMemoryIdentityStore,
    plan: &Plan,
    read_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut state = store.lock();
    let slot = state.plans.get_mut(&plan.id).ok_or(StoreError::NotFound)?;
    if slot.updated_at != read_at {
        return Err(StoreError::Conflict);
    }
    *slot = plan.clone();
    Ok(())
}

pub(super) async fn delete_plan(store: &InMemoryIdentityStore, id: Uuid) -> Result<(), StoreError> {
    let mut state = store.lock();
    let plan = state.plans.get(&id).ok_or(StoreError::NotFound)?;
    if state
        .subscriptions
        .values()
        .any(|s| s.plan_code == plan.code)
    {
        return Err(StoreError::PlanInUse);
    }
    state.plans.remove(&id);
    Ok(())
}

pub(super) async fn subscription_by_id(
    store: &InMemoryIdentityStore,
    id: Uuid,
) -> Result<Option<Subscription>, StoreError> {
    Ok(store.lock().subscriptions.get(&id).cloned())
}

pub(super) async fn live_subscription(
    store: &InMemoryIdentityStore,
    user: Uuid,
) -> Result<Option<Subscription>, StoreError> {
    Ok(store
        .lock()
        .subscriptions
        .values()
        .find(|s| s.user_id == user && s.is_live())
        .cloned())
}

pub(super) async fn latest_subscription(
    store: &InMemoryIdentityStore,
    user: Uuid,
) -> Result<Option<Subscription>, StoreError> {
    Ok(store
        .lock()
        .subscriptions
        .values()
        .filter(|s| s.user_id == user)
        .max_by_key(|s| s.created_at)
        .cloned())
}

pub(super) async fn transition_subscription(
    store: &InMemoryIdentityStore,
    id: Uuid,
    patch: &SubscriptionPatch,
    outbox: &[OutboxEvent],
) -> Result<Subscription, StoreError> {
    let mut state = store.lock();
    let status = state
        .subscriptions
        .get(&id)
        .ok_or(StoreError::NotFound)?
        .status;
    if status != patch.from {
        return Err(StoreError::Conflict);
    }
    if let Some(code) = &patch.plan_code
        && !state.has_plan(code)
    {
        return Err(StoreError::PlanInUse);
    }
    let s = state
        .subscriptions
        .get_mut(&id)
        .ok_or(StoreError::NotFound)?;
    patch.apply(s);
    let s = s.clone();
    let unleased = state.enqueue(outbox, &store.link);
    drop(state);
    store.wake_if(unleased);
    Ok(s)
}

pub(super) async fn sweep_due(
    store: &InMemoryIdentityStore,
    now: DateTime<Utc>,
    limit: u32,
    rule: SweepRule<'_>,
) -> Result<Vec<SweptSubscription>, StoreError> {
    let mut guard = store.lock();
    let state = &mut *guard;
    let mut due: Vec<&mut Subscription> = state
        .subscriptions
        .values_mut()
        .filter(|s| match s.status {
            SubscriptionStatus::Trialing => s.trial_end.is_some_and(|end| end <= now),
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                s.period_end.is_some_and(|end| end <= now)
            }
            _ => false,
        })
        .collect();
    due.sort_by_key(|s| s.created_at);
    let mut swept = Vec::new();
    let mut events = Vec::new();
    for s in due.into_iter().take(limit as usize) {
        if let Some(step) = rule(s).filter(|m| m.patch.from == s.status) {
            let previous = s.status;
            step.patch.apply(s);
            events.extend(step.outbox);
            swept.push(SweptSubscription {
                previous,
                subscription: s.clone(),
            });
        }
    }
    let unleased = state.enqueue(&events, &store.link);
    drop(guard);
    store.wake_if(unleased);
    Ok(swept)
}
