//! Use case: verify the OTP. The comparison first takes its slot in the
//! store (at most `MAX_OTP_ATTEMPTS` per code, whatever the concurrency);
//! a right code activates the account and starts a 14-day trial on the free
//! plan, conditional on the account still being unverified with that code;
//! `subscription.created` is written to the outbox in the same transaction
//! (`EVENT_DELIVERY=outbox`) or published after the commit (`direct`).

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use super::{AccountService, AccountStatus, MAX_OTP_ATTEMPTS, User};
use crate::{
    domain::{email_address::Email, events::EventDelivery, otp::OtpCode},
    ports::{OtpSlot, StoreError},
};

/// Why an OTP did not verify the account.
#[derive(Debug, thiserror::Error)]
pub enum VerifyOtpError {
    /// The code is not the account's; `attempts_left` more tries remain
    /// on this code. Also (with 0 left) when no account has the e-mail,
    /// so the answer does not reveal who has an account.
    #[error("wrong OTP; {attempts_left} attempt(s) left")]
    OtpInvalid {
        /// Tries left on this code; `< MAX_OTP_ATTEMPTS`.
        attempts_left: u32,
    },
    /// The code is older than [`OTP_TTL_MINUTES`](super::OTP_TTL_MINUTES),
    /// or the account has none: a new one must be requested.
    #[error("OTP expired, please request a new one")]
    OtpExpired,
    /// [`MAX_OTP_ATTEMPTS`](super::MAX_OTP_ATTEMPTS) wrong codes were
    /// tried: this code is void, a new one must be requested.
    #[error("too many wrong OTPs, please request a new one")]
    OtpLocked,
    /// The account is verified already (perhaps by a concurrent request).
    #[error("the account is already verified")]
    AlreadyVerified,
    /// A re-send replaced the code while this one was checked; nothing was
    /// written.
    #[error("the account was changed by a concurrent request; read it again and retry")]
    Conflict,
    /// The identity store failed (also while starting the trial); nothing
    /// was written.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for VerifyOtpError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => VerifyOtpError::Conflict,
            other => VerifyOtpError::Store(other),
        }
    }
}

/// Why an OTP check got no slot, from the account as stored.
fn refusal(user: Option<&User>, now: DateTime<Utc>) -> VerifyOtpError {
    let Some(user) = user else {
        return VerifyOtpError::OtpInvalid { attempts_left: 0 };
    };
    if user.status == AccountStatus::Active {
        return VerifyOtpError::AlreadyVerified;
    }
    match &user.otp {
        None => VerifyOtpError::OtpExpired,
        Some(otp) if otp.attempts >= MAX_OTP_ATTEMPTS => VerifyOtpError::OtpLocked,
        Some(otp) if otp.is_expired(now) => VerifyOtpError::OtpExpired,
        // A re-send replaced the code between the two reads.
        Some(_) => VerifyOtpError::Conflict,
    }
}

impl AccountService {
    /// Checks `code` against the account's OTP; the right one activates the
    /// account and starts its trial on the free plan, and the account is
    /// returned as activated.
    ///
    /// # Errors
    ///
    /// [`VerifyOtpError::OtpInvalid`] for a wrong code (or an unknown
    /// e-mail), [`VerifyOtpError::OtpExpired`], [`VerifyOtpError::OtpLocked`]
    /// once the code is void, [`VerifyOtpError::AlreadyVerified`],
    /// [`VerifyOtpError::Conflict`] when a re-send replaced the code
    /// meanwhile, [`VerifyOtpError::Store`] when the store fails.
    #[tracing::instrument(name = "account.verify_otp", skip_all)]
    pub async fn verify_otp(&self, email: &Email, code: &OtpCode) -> Result<User, VerifyOtpError> {
        let now = self.clock.now();
        let user = match self
            .store
            .take_otp_slot(email, now, MAX_OTP_ATTEMPTS)
            .await?
        {
            OtpSlot::Granted(user) => user,
            OtpSlot::Refused(user) => return Err(refusal(user.as_ref(), now)),
        };
        let otp = user.otp.clone().ok_or(VerifyOtpError::OtpExpired)?;
        if !bool::from(otp.code.as_str().as_bytes().ct_eq(code.as_str().as_bytes())) {
            tracing::warn!(user_id = %user.id, attempts = otp.attempts, "wrong OTP");
            return Err(if otp.attempts >= MAX_OTP_ATTEMPTS {
                VerifyOtpError::OtpLocked
            } else {
                VerifyOtpError::OtpInvalid {
                    attempts_left: MAX_OTP_ATTEMPTS - otp.attempts,
                }
            });
        }
        let subscription = self
            .billing
            .new_trial(user.id)
            .await
            .map_err(VerifyOtpError::Store)?;
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
