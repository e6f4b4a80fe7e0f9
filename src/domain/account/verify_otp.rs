//! Use case: verify the OTP. The comparison first takes its slot in the
//! store (at most `MAX_OTP_ATTEMPTS` per code, whatever the concurrency);
//! a right code activates the account and starts a 14-day trial on the free
//! plan, conditional on the account still being unverified with that code;
//! `subscription.created` is written to the outbox in the same transaction
//! (`EVENT_DELIVERY=outbox`) or published after the commit (`direct`).

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use super::{AccountError, AccountService, AccountStatus, MAX_OTP_ATTEMPTS, User};
use crate::{
    domain::{email_address::Email, events::EventDelivery, otp::OtpCode},
    ports::{OtpSlot, StoreError},
};

/// Why an OTP check got no slot, from the account as stored.
fn refusal(user: Option<&User>, now: DateTime<Utc>) -> AccountError {
    let Some(user) = user else {
        return AccountError::OtpInvalid { attempts_left: 0 };
    };
    if user.status == AccountStatus::Active {
        return AccountError::AlreadyVerified;
    }
    match &user.otp {
        None => AccountError::OtpExpired,
        Some(otp) if otp.attempts >= MAX_OTP_ATTEMPTS => AccountError::OtpLocked,
        Some(otp) if otp.is_expired(now) => AccountError::OtpExpired,
        // A re-send replaced the code between the two reads.
        Some(_) => AccountError::Conflict,
    }
}

impl AccountService {
    #[tracing::instrument(name = "account.verify_otp", skip_all)]
    pub async fn verify_otp(&self, email: &Email, code: &OtpCode) -> Result<User, AccountError> {
        let now = self.clock.now();
        let user = match self
            .store
            .take_otp_slot(email, now, MAX_OTP_ATTEMPTS)
            .await?
        {
            OtpSlot::Granted(user) => user,
            OtpSlot::Refused(user) => return Err(refusal(user.as_ref(), now)),
        };
        let otp = user.otp.clone().ok_or(AccountError::OtpExpired)?;
        if !bool::from(otp.code.as_str().as_bytes().ct_eq(code.as_str().as_bytes())) {
            tracing::warn!(user_id = %user.id, attempts = otp.attempts, "wrong OTP");
            return Err(if otp.attempts >= MAX_OTP_ATTEMPTS {
                AccountError::OtpLocked
            } else {
                AccountError::OtpInvalid {
                    attempts_left: MAX_OTP_ATTEMPTS - otp.attempts,
                }
            });
        }
        let subscription = self
            .billing
            .new_trial(user.id)
            .await
            .map_err(|e| AccountError::Store(e.into_store()))?;
        let outbox = self.events.delivery() == EventDelivery::Outbox;
        let events: Vec<_> = if outbox {
            self.billing
                .created_for_outbox(&subscription)
                .await
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let user = match self
            .store
            .activate_with_subscription(user.id, otp.code.as_str(), &subscription, now, &events)
            .await
        {
            Ok(user) => user,
            // Another request verified (or re-sent) first.
            Err(StoreError::Conflict) => {
                let current = self.store.user_by_id(user.id).await?;
                return Err(refusal(current.as_ref(), now));
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(user_id = %user.id, subscription_id = %subscription.id, "account verified; trial started");
        if !outbox {
            self.billing.announce_created(&subscription).await;
        }
        Ok(user)
    }
}
