//! Accounts and sessions in memory: registration (undone when its hook
//! fails), look-ups, profile, password and role changes, and sessions.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{PasswordHash, Role, Session, User},
        email_address::Email,
    },
    ports::{OutboxEvent, ProfileChanges, StoreError, TxHook, UserRef},
};

use super::{InMemoryIdentityStore, email_key};

pub(super) async fn insert_user_then<'a>(
    store: &InMemoryIdentityStore,
    user: &User,
    hook: TxHook<'a>,
) -> Result<(), StoreError> {
    {
        let mut state = store.lock();
        let key = email_key(&user.email);
        if state.by_email.contains_key(&key) {
            return Err(StoreError::EmailTaken);
        }
        state.by_email.insert(key, user.id);
        state.users.insert(user.id, user.clone());
    }
    if let Err(error) = hook.await {
        let mut state = store.lock();
        state.users.remove(&user.id);
        state.by_email.remove(&email_key(&user.email));
        return Err(StoreError::RolledBack(error));
    }
    Ok(())
}

pub(super) async fn insert_user_enqueue(
    store: &InMemoryIdentityStore,
    user: &User,
    outbox: &[OutboxEvent],
) -> Result<(), StoreError> {
    let unleased = {
        let mut state = store.lock();
        let key = email_key(&user.email);
        if state.by_email.contains_key(&key) {
            return Err(StoreError::EmailTaken);
        }
        state.by_email.insert(key, user.id);
        state.users.insert(user.id, user.clone());
        state.enqueue(outbox, &store.link)
    };
    store.wake_if(unleased);
    Ok(())
}

pub(super) async fn user_by_email(
    store: &InMemoryIdentityStore,
    email: &Email,
) -> Result<Option<User>, StoreError> {
    let state = store.lock();
    Ok(state
        .by_email
        .get(&email_key(email))
        .and_then(|id| state.users.get(id))
        .cloned())
}

pub(super) async fn user_by_id(
    store: &InMemoryIdentityStore,
    id: Uuid,
) -> Result<Option<User>, StoreError> {
    Ok(store.lock().users.get(&id).cloned())
}

pub(super) async fn list_users(
    store: &InMemoryIdentityStore,
    offset: u64,
    limit: u64,
) -> Result<(Vec<User>, u64), StoreError> {
    let state = store.lock();
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

pub(super) async fn update_profile(
    store: &InMemoryIdentityStore,
    user: Uuid,
    changes: &ProfileChanges,
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    let mut state = store.lock();
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

pub(super) async fn change_password(
    store: &InMemoryIdentityStore,
    user: Uuid,
    current: &PasswordHash,
    new: &PasswordHash,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut state = store.lock();
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

pub(super) async fn set_role(
    store: &InMemoryIdentityStore,
    email: &Email,
    role: Role,
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    let mut state = store.lock();
    let user = state
        .user_mut(UserRef::Email(email))
        .ok_or(StoreError::NotFound)?;
    user.role = role;
    user.updated_at = now;
    Ok(user.clone())
}

pub(super) async fn insert_session(
    store: &InMemoryIdentityStore,
    session: &Session,
    checked: &PasswordHash,
) -> Result<(), StoreError> {
    let mut state = store.lock();
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

pub(super) async fn session_user(
    store: &InMemoryIdentityStore,
    session: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<User>, StoreError> {
    let state = store.lock();
    Ok(state
        .sessions
        .get(&session)
        .filter(|s| s.expires_at > now)
        .and_then(|s| state.users.get(&s.user_id))
        .cloned())
}

pub(super) async fn delete_session(
    store: &InMemoryIdentityStore,
    session: Uuid,
) -> Result<(), StoreError> {
    store.lock().sessions.remove(&session);
    Ok(())
}

pub(super) async fn delete_expired_sessions(
    store: &InMemoryIdentityStore,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut state = store.lock();
    let before = state.sessions.len();
    state.sessions.retain(|_, s| s.expires_at > now);
    Ok((before - state.sessions.len()) as u64)
}
