//! Use case: verify the OTP. The account becomes active and a 14-day trial
//! on the free plan starts; `subscription.created` is published after the
//! commit.

use subtle::ConstantTimeEq;

use super::{AccountError, AccountService, AccountStatus, MAX_OTP_ATTEMPTS, User};
use crate::domain::{email::Email, otp::OtpCode};

impl AccountService {
    #[tracing::instrument(name = "account.verify_otp", skip_all)]
    pub async fn verify_otp(&self, email: &Email, code: &OtpCode) -> Result<User, AccountError> {
        let mut user = self
            .store
            .user_by_email(email)
            .await?
            .ok_or(AccountError::OtpInvalid { attempts_left: 0 })?;
        if user.status == AccountStatus::Active {
            return Err(AccountError::AlreadyVerified);
        }
        let now = self.clock.now();
        let otp = user.otp.clone().ok_or(AccountError::OtpExpired)?;
        if otp.attempts >= MAX_OTP_ATTEMPTS {
            return Err(AccountError::OtpLocked);
        }
        if otp.is_expired(now) {
            return Err(AccountError::OtpExpired);
        }
        if !bool::from(otp.code.as_str().as_bytes().ct_eq(code.as_str().as_bytes())) {
            let attempts = self.store.count_otp_failure(user.id).await?;
            tracing::warn!(user_id = %user.id, attempts, "wrong OTP");
            return Err(if attempts >= MAX_OTP_ATTEMPTS {
                AccountError::OtpLocked
            } else {
                AccountError::OtpInvalid {
                    attempts_left: MAX_OTP_ATTEMPTS - attempts,
                }
            });
        }
        user.status = AccountStatus::Active;
        user.otp = None;
        user.updated_at = now;
        let subscription = self
            .billing
            .new_trial(user.id)
            .await
            .map_err(|e| AccountError::Store(e.into_store()))?;
        self.store
            .activate_with_subscription(&user, &subscription)
            .await?;
        tracing::info!(user_id = %user.id, subscription_id = %subscription.id, "account verified; trial started");
        self.billing.announce_created(&subscription).await;
        Ok(user)
    }
}
