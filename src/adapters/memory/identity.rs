//! `InMemoryIdentityStore`: users, plans and subscriptions in process, with
//! the store contract's rules (unique e-mail ignoring case, one live
//! subscription per user, plans in use kept), a registration
//! "transaction" that removes the user again when its hook fails, and every
//! slot and transition as one step under the store's lock.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{AccountStatus, OtpChallenge, PasswordHash, Role, Session, User},
        billing::{Plan, PlanCode, Subscription, SubscriptionPatch, SubscriptionStatus},
        email_address::Email,
    },
    ports::{
        IdentityStore, OtpSlot, OutboxBacklog, OutboxEntry, OutboxEvent, PasswordLimit,
        PasswordSlot, ProfileChanges, ResendEvents, ResendSlot, StoreError, SweepRule,
        SweptSubscription, TxHook, UserRef,
    },
};

#[derive(Default)]
struct State {
    users: HashMap<Uuid, User>,
    by_email: HashMap<String, Uuid>,
    sessions: HashMap<Uuid, Session>,
    plans: HashMap<Uuid, Plan>,
    subscriptions: HashMap<Uuid, Subscription>,
    /// The outbox, in the order of writing (`id` ascending).
    outbox: Vec<OutboxRow>,
    next_outbox_id: i64,
}

struct OutboxRow {
    entry: OutboxEntry,
    locked_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    published_at: Option<DateTime<Utc>>,
}

impl State {
    fn user_mut(&mut self, who: UserRef<'_>) -> Option<&mut User> {
        let id = match who {
            UserRef::Id(id) => id,
            UserRef::Email(email) => *self.by_email.get(&email_key(email))?,
        };
        self.users.get_mut(&id)
    }

    /// Appends `events` to the outbox; the caller holds the lock that makes
    /// this part of its change.
    fn enqueue(&mut self, events: &[OutboxEvent]) {
        let trace = crate::adapters::bus::message::trace_text();
        for e in events {
            self.next_outbox_id += 1;
            self.outbox.push(OutboxRow {
                entry: OutboxEntry {
                    id: self.next_outbox_id,
                    aggregate: e.aggregate.clone(),
                    event_id: e.event.event_id().to_string(),
                    routing_key: e.event.routing_key().to_string(),
                    body: String::from_utf8_lossy(e.event.body()).into_owned(),
                    trace: trace.clone(),
                    attempts: 0,
                    created_at: Utc::now(),
                },
                locked_until: None,
                last_error: None,
                published_at: None,
            });
        }
    }
}

#[derive(Default)]
pub struct InMemoryIdentityStore {
    state: Mutex<State>,
    wakeup: Arc<tokio::sync::Notify>,
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

    fn wake_if(&self, events: usize) {
        if events > 0 {
            self.wakeup.notify_one();
        }
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

    async fn insert_user_enqueue(
        &self,
        user: &User,
        outbox: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        {
            let mut state = self.lock();
            let key = email_key(&user.email);
            if state.by_email.contains_key(&key) {
                return Err(StoreError::EmailTaken);
            }
            state.by_email.insert(key, user.id);
            state.users.insert(user.id, user.clone());
            state.enqueue(outbox);
        }
        self.wake_if(outbox.len());
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

    async fn take_password_slot(
        &self,
        who: UserRef<'_>,
        now: DateTime<Utc>,
        limit: PasswordLimit,
    ) -> Result<PasswordSlot, StoreError> {
        let mut state = self.lock();
        let Some(user) = state.user_mut(who) else {
            return Ok(PasswordSlot::NoUser);
        };
        match user.login_blocked_until {
            Some(until) if until > now => return Ok(PasswordSlot::Locked { until }),
            // The lock is over: a new window, this check its first.
            Some(_) => {
                user.failed_logins = 0;
                user.login_blocked_until = None;
            }
            None => {}
        }
        user.failed_logins += 1;
        if user.failed_logins >= limit.max_checks {
            user.login_blocked_until = Some(now + limit.lock_for);
        }
        Ok(PasswordSlot::Granted(user.clone()))
    }

    async fn clear_password_failures(
        &self,
        user: Uuid,
        count_at_slot: u32,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
        if user.failed_logins == count_at_slot {
            user.failed_logins = 0;
            user.login_blocked_until = None;
        }
        Ok(())
    }

    async fn release_password_slot(
        &self,
        user: Uuid,
        count_at_slot: u32,
        limit: PasswordLimit,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
        if user.failed_logins == count_at_slot && count_at_slot > 0 {
            if count_at_slot >= limit.max_checks {
                user.login_blocked_until = None;
            }
            user.failed_logins -= 1;
        }
        Ok(())
    }

    async fn take_otp_slot(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<OtpSlot, StoreError> {
        let mut state = self.lock();
        let Some(user) = state.user_mut(UserRef::Email(email)) else {
            return Ok(OtpSlot::Refused(None));
        };
        let unverified = user.status == AccountStatus::Unverified;
        match user.otp.as_mut() {
            Some(otp) if unverified && otp.attempts < max_attempts && !otp.is_expired(now) => {
                otp.attempts += 1;
                Ok(OtpSlot::Granted(user.clone()))
            }
            _ => Ok(OtpSlot::Refused(Some(user.clone()))),
        }
    }

    async fn take_resend_slot(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
        cooldown: Duration,
        max_attempts: u32,
        fresh: &OtpChallenge,
        outbox: ResendEvents<'_>,
    ) -> Result<ResendSlot, StoreError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(user) = state.users.get_mut(&user) else {
            return Ok(ResendSlot::Refused(None));
        };
        let cooling = user
            .otp
            .as_ref()
            .is_some_and(|o| o.sent_at > now - cooldown);
        if user.status != AccountStatus::Unverified || cooling {
            return Ok(ResendSlot::Refused(Some(user.clone())));
        }
        let challenge = match user.otp.take() {
            Some(otp) if !otp.is_expired(now) && otp.attempts < max_attempts => OtpChallenge {
                sent_at: now,
                ..otp
            },
            _ => fresh.clone(),
        };
        user.otp = Some(challenge.clone());
        user.updated_at = now;
        let user = user.clone();
        let events = outbox(&challenge, &user);
        state.enqueue(&events);
        drop(guard);
        self.wake_if(events.len());
        Ok(ResendSlot::Granted(challenge, user))
    }

    async fn release_resend_slot(
        &self,
        user: Uuid,
        taken_at: DateTime<Utc>,
        cooldown: Duration,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(otp) = state.users.get_mut(&user).and_then(|u| u.otp.as_mut())
            && otp.sent_at == taken_at
        {
            otp.sent_at = taken_at - cooldown;
        }
        Ok(())
    }

    async fn activate_with_subscription(
        &self,
        user: Uuid,
        code: &str,
        subscription: &Subscription,
        now: DateTime<Utc>,
        outbox: &[OutboxEvent],
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
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
        state
            .subscriptions
            .insert(subscription.id, subscription.clone());
        let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
        user.status = AccountStatus::Active;
        user.otp = None;
        user.updated_at = now;
        let user = user.clone();
        state.enqueue(outbox);
        drop(state);
        self.wake_if(outbox.len());
        Ok(user)
    }

    async fn update_profile(
        &self,
        user: Uuid,
        changes: &ProfileChanges,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
        let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
        if let Some(name) = &changes.full_name {
            user.full_name = Some(name.clone());
        }
        if let Some(locale) = changes.locale {
            user.locale = locale;
        }
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn change_password(
        &self,
        user: Uuid,
        current: &PasswordHash,
        new: &PasswordHash,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let row = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
        if &row.password_hash != current {
            return Err(StoreError::Conflict);
        }
        row.password_hash = new.clone();
        row.failed_logins = 0;
        row.login_blocked_until = None;
        row.updated_at = now;
        state.sessions.retain(|_, s| s.user_id != user);
        state.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
        let user = state
            .user_mut(UserRef::Email(email))
            .ok_or(StoreError::NotFound)?;
        user.role = role;
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn insert_session(
        &self,
        session: &Session,
        checked: &PasswordHash,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let user = state
            .users
            .get(&session.user_id)
            .ok_or(StoreError::NotFound)?;
        if &user.password_hash != checked {
            return Err(StoreError::Conflict);
        }
        state.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn session_user(
        &self,
        session: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let state = self.lock();
        Ok(state
            .sessions
            .get(&session)
            .filter(|s| s.expires_at > now)
            .and_then(|s| state.users.get(&s.user_id))
            .cloned())
    }

    async fn delete_session(&self, session: Uuid) -> Result<(), StoreError> {
        self.lock().sessions.remove(&session);
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.expires_at > now);
        Ok((before - state.sessions.len()) as u64)
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

    async fn update_plan(&self, plan: &Plan, read_at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.lock();
        let slot = state.plans.get_mut(&plan.id).ok_or(StoreError::NotFound)?;
        if slot.updated_at != read_at {
            return Err(StoreError::Conflict);
        }
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

    async fn transition_subscription(
        &self,
        id: Uuid,
        patch: &SubscriptionPatch,
        outbox: &[OutboxEvent],
    ) -> Result<Subscription, StoreError> {
        let mut state = self.lock();
        let s = state
            .subscriptions
            .get_mut(&id)
            .ok_or(StoreError::NotFound)?;
        if s.status != patch.from {
            return Err(StoreError::Conflict);
        }
        patch.apply(s);
        let s = s.clone();
        state.enqueue(outbox);
        drop(state);
        self.wake_if(outbox.len());
        Ok(s)
    }

    async fn sweep_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        rule: SweepRule<'_>,
    ) -> Result<Vec<SweptSubscription>, StoreError> {
        let mut guard = self.lock();
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
        state.enqueue(&events);
        drop(guard);
        self.wake_if(events.len());
        Ok(swept)
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut state = self.lock();
        // Rows are in id order: the first unpublished row met for an
        // aggregate is its oldest; later ones wait for it.
        let mut seen = HashSet::new();
        let mut claimed = Vec::new();
        for row in state.outbox.iter_mut().filter(|r| r.published_at.is_none()) {
            if !seen.insert(row.entry.aggregate.clone()) {
                continue;
            }
            if row.locked_until.is_some_and(|until| until > now) {
                continue;
            }
            row.locked_until = Some(now + lease);
            claimed.push(row.entry.clone());
            if claimed.len() >= limit as usize {
                break;
            }
        }
        Ok(claimed)
    }

    async fn outbox_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.lock();
        for row in state
            .outbox
            .iter_mut()
            .filter(|r| ids.contains(&r.entry.id))
        {
            row.published_at = Some(now);
            row.locked_until = None;
        }
        Ok(())
    }

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(row) = state.outbox.iter_mut().find(|r| r.entry.id == id) {
            row.entry.attempts += 1;
            row.last_error = Some(error.to_owned());
            row.locked_until = Some(retry_at);
        }
        Ok(())
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let state = self.lock();
        let pending = state.outbox.iter().filter(|r| r.published_at.is_none());
        Ok(OutboxBacklog {
            pending: pending.clone().count() as u64,
            oldest: pending.map(|r| r.entry.created_at).min(),
        })
    }

    async fn purge_outbox(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let len = state.outbox.len();
        state
            .outbox
            .retain(|r| r.published_at.is_none_or(|at| at >= before));
        Ok((len - state.outbox.len()) as u64)
    }

    fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.wakeup.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::InMemoryIdentityStore;
    use crate::ports::suites;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_identity_contract() {
        suites::identity_store::run_all(Arc::new(InMemoryIdentityStore::new()), "mem").await;
    }
}
