//! `InMemoryIdentityStore`: users, plans and subscriptions in process, with
//! the store contract's rules (unique e-mail ignoring case, one live
//! subscription per user, plans in use kept) and a registration
//! "transaction" that removes the user again when its hook fails.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{Plan, Subscription, User},
        email::Email,
        plan::PlanCode,
        subscription::SubscriptionStatus,
    },
    ports::{IdentityStore, StoreError, TxHook},
};

#[derive(Default)]
struct State {
    users: HashMap<Uuid, User>,
    by_email: HashMap<String, Uuid>,
    plans: HashMap<Uuid, Plan>,
    subscriptions: HashMap<Uuid, Subscription>,
}

#[derive(Default)]
pub struct InMemoryIdentityStore {
    state: Mutex<State>,
}

fn email_key(email: &Email) -> String {
    email.as_str().to_lowercase()
}

impl InMemoryIdentityStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl IdentityStore for InMemoryIdentityStore {
    async fn insert_user_then<'a>(&self, user: &User, hook: TxHook<'a>) -> Result<(), StoreError> {
        {
            let mut state = self.lock();
            let key = email_key(&user.email);
            if state.by_email.contains_key(&key) {
                return Err(StoreError::EmailTaken);
            }
            state.by_email.insert(key, user.id);
            state.users.insert(user.id, user.clone());
        }
        if let Err(error) = hook.await {
            let mut state = self.lock();
            state.users.remove(&user.id);
            state.by_email.remove(&email_key(&user.email));
            return Err(StoreError::RolledBack(error));
        }
        Ok(())
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let state = self.lock();
        Ok(state
            .by_email
            .get(&email_key(email))
            .and_then(|id| state.users.get(id))
            .cloned())
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut state = self.lock();
        let slot = state.users.get_mut(&user.id).ok_or(StoreError::NotFound)?;
        *slot = user.clone();
        Ok(())
    }

    async fn count_otp_failure(&self, user: Uuid) -> Result<u32, StoreError> {
        let mut state = self.lock();
        let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
        let otp = user.otp.as_mut().ok_or(StoreError::NotFound)?;
        otp.attempts += 1;
        Ok(otp.attempts)
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<(Vec<User>, u64), StoreError> {
        let state = self.lock();
        let mut users: Vec<&User> = state.users.values().collect();
        users.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        let total = users.len() as u64;
        let page = users
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        Ok((page, total))
    }

    async fn activate_with_subscription(
        &self,
        user: &User,
        subscription: &Subscription,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.users.contains_key(&user.id) {
            return Err(StoreError::NotFound);
        }
        if state
            .subscriptions
            .values()
            .any(|s| s.user_id == user.id && s.is_live())
        {
            return Err(StoreError::LiveSubscriptionExists);
        }
        state.users.insert(user.id, user.clone());
        state
            .subscriptions
            .insert(subscription.id, subscription.clone());
        Ok(())
    }

    async fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        let mut plans: Vec<Plan> = self.lock().plans.values().cloned().collect();
        plans.sort_by(|a, b| a.price_minor.cmp(&b.price_minor).then(a.code.cmp(&b.code)));
        Ok(plans)
    }

    async fn plan_by_id(&self, id: Uuid) -> Result<Option<Plan>, StoreError> {
        Ok(self.lock().plans.get(&id).cloned())
    }

    async fn plan_by_code(&self, code: &PlanCode) -> Result<Option<Plan>, StoreError> {
        Ok(self
            .lock()
            .plans
            .values()
            .find(|p| &p.code == code)
            .cloned())
    }

    async fn insert_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.plans.values().any(|p| p.code == plan.code) {
            return Err(StoreError::PlanCodeTaken);
        }
        state.plans.insert(plan.id, plan.clone());
        Ok(())
    }

    async fn update_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let mut state = self.lock();
        let slot = state.plans.get_mut(&plan.id).ok_or(StoreError::NotFound)?;
        *slot = plan.clone();
        Ok(())
    }

    async fn delete_plan(&self, id: Uuid) -> Result<(), StoreError> {
        let mut state = self.lock();
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

    async fn subscription_by_id(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
        Ok(self.lock().subscriptions.get(&id).cloned())
    }

    async fn live_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .find(|s| s.user_id == user && s.is_live())
            .cloned())
    }

    async fn latest_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .filter(|s| s.user_id == user)
            .max_by_key(|s| s.created_at)
            .cloned())
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let mut state = self.lock();
        if subscription.is_live()
            && state.subscriptions.values().any(|s| {
                s.user_id == subscription.user_id && s.id != subscription.id && s.is_live()
            })
        {
            return Err(StoreError::LiveSubscriptionExists);
        }
        let slot = state
            .subscriptions
            .get_mut(&subscription.id)
            .ok_or(StoreError::NotFound)?;
        *slot = subscription.clone();
        Ok(())
    }

    async fn subscriptions_due(&self, now: DateTime<Utc>) -> Result<Vec<Subscription>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .filter(|s| match s.status {
                SubscriptionStatus::Trialing => s.trial_end.is_some_and(|end| end <= now),
                SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                    s.period_end.is_some_and(|end| end <= now)
                }
                _ => false,
            })
            .cloned()
            .collect())
    }
}
