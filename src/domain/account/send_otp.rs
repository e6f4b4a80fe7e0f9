//! Use case: send the OTP again. The unexpired code is re-sent (a new one
//! once it expired or was locked by wrong attempts), at most once per
//! cool-down.

use chrono::Duration;

use super::{
    AccountError, AccountService, AccountStatus, MAX_OTP_ATTEMPTS, OTP_RESEND_COOLDOWN_SECONDS,
    OtpChallenge, Password, User,
};
use crate::domain::{
    email::Email,
    events::{EmailVerificationPayload, EventData},
    timestamp::Timestamp,
};

impl AccountService {
    pub(super) async fn authenticate(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<User, AccountError> {
        let user = self.store.user_by_email(email).await?;
        let Some(user) = user else {
            // Same work as a real check, so timing does not tell who exists;
            // and the same bound, so a saturated hasher answers 503 alike.
            self.hasher.hash(password).await?;
            return Err(AccountError::InvalidCredentials);
        };
        if self.hasher.verify(password, &user.password_hash).await? {
            Ok(user)
        } else {
            Err(AccountError::InvalidCredentials)
        }
    }

    #[tracing::instrument(name = "account.send_otp", skip_all)]

    pub async fn send_otp(&self, email: &Email, password: &Password) -> Result<(), AccountError> {
        let mut user = self.authenticate(email, password).await?;
        if user.status == AccountStatus::Active {
            return Err(AccountError::AlreadyVerified);
        }
        let now = self.clock.now();
        let previous = user.otp.clone();
        if let Some(otp) = &previous {
            let ready_at = otp.sent_at + Duration::seconds(OTP_RESEND_COOLDOWN_SECONDS);
            if now < ready_at {
                return Err(AccountError::OtpCooldown {
                    retry_after_secs: (ready_at - now).num_seconds().max(1),
                });
            }
        }
        let challenge = match previous.clone() {
            Some(otp) if !otp.is_expired(now) && otp.attempts < MAX_OTP_ATTEMPTS => OtpChallenge {
                sent_at: now,
                ..otp
            },
            _ => OtpChallenge::new(self.otps.new_otp(), now),
        };
        user.otp = Some(challenge.clone());
        user.updated_at = now;
        self.store.update_user(&user).await?;
        let data = EventData::EmailVerificationRequested(EmailVerificationPayload {
            user_id: user.id,
            recipient: user.email.clone(),
            otp_code: challenge.code.clone(),
            locale: user.locale,
            expires_at: Timestamp::new(challenge.expires_at),
        });
        if let Err(error) = self.events.publish(data).await {
            // Undo the send time so the cool-down does not block a retry.
            user.otp = previous;
            let _ = self.store.update_user(&user).await;
            tracing::error!(user_id = %user.id, error = %error, "OTP e-mail could not be queued");
            return Err(AccountError::EventNotPublished(error));
        }
        tracing::info!(user_id = %user.id, recipient = %user.email.masked(), "OTP sent again");
        Ok(())
    }
}
