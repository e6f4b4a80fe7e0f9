//! The attempt limits in memory: password, OTP and resend slots, each one
//! step under the store's lock.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        account::{AccountStatus, OtpChallenge},
        email_address::Email,
    },
    ports::{OtpSlot, PasswordLimit, PasswordSlot, ResendEvents, ResendSlot, StoreError, UserRef},
};

use super::InMemoryIdentityStore;

pub(super) async fn take_password_slot(
    store: &InMemoryIdentityStore,
    who: UserRef<'_>,
    now: DateTime<Utc>,
    limit: PasswordLimit,
) -> Result<PasswordSlot, StoreError> {
    let mut state = store.lock();
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

pub(super) async fn clear_password_failures(
    store: &InMemoryIdentityStore,
    user: Uuid,
    count_at_slot: u32,
) -> Result<(), StoreError> {
    let mut state = store.lock();
    let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
    if user.failed_logins == count_at_slot {
        user.failed_logins = 0;
        user.login_blocked_until = None;
    }
    Ok(())
}

pub(super) async fn release_password_slot(
    store: &InMemoryIdentityStore,
    user: Uuid,
    count_at_slot: u32,
    limit: PasswordLimit,
) -> Result<(), StoreError> {
    let mut state = store.lock();
    let user = state.users.get_mut(&user).ok_or(StoreError::NotFound)?;
    if user.failed_logins == count_at_slot && count_at_slot > 0 {
        if count_at_slot >= limit.max_checks {
            user.login_blocked_until = None;
        }
        user.failed_logins -= 1;
    }
    Ok(())
}

pub(super) async fn take_otp_slot(
    store: &InMemoryIdentityStore,
    email: &Email,
    now: DateTime<Utc>,
    max_attempts: u32,
) -> Result<OtpSlot, StoreError> {
    let mut state = store.lock();
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

pub(super) async fn take_resend_slot(
    store: &InMemoryIdentityStore,
    user: Uuid,
    now: DateTime<Utc>,
    cooldown: Duration,
    max_attempts: u32,
    fresh: &OtpChallenge,
    outbox: ResendEvents<'_>,
) -> Result<ResendSlot, StoreError> {
    let mut guard = store.lock();
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
    let unleased = state.enqueue(&events, &store.link);
    drop(guard);
    store.wake_if(unleased);
    Ok(ResendSlot::Granted(challenge, user))
}

pub(super) async fn release_resend_slot(
    store: &InMemoryIdentityStore,
    user: Uuid,
    taken_at: DateTime<Utc>,
    cooldown: Duration,
) -> Result<(), StoreError> {
    let mut state = store.lock();
    if let Some(otp) = state.users.get_mut(&user).and_then(|u| u.otp.as_mut())
        && otp.sent_at == taken_at
    {
        otp.sent_at = taken_at - cooldown;
    }
    Ok(())
}
