//! Use case: register. The user is stored unverified with a fresh OTP, and
//! `email.verification.requested` goes with it in one database
//! transaction: written to the outbox (`EVENT_DELIVERY=outbox`; the relay
//! publishes it, so a broker outage does not refuse the registration), or
//! published inside the transaction (`direct`: if the event cannot be
//! published after the retry policy, nothing is stored and the caller gets a
//! retryable error).

use super::{
    AccountError, AccountService, AccountStatus, FullName, OtpChallenge, Password, Role, User,
};
use crate::domain::{
    email_address::Email,
    events::{EmailVerificationPayload, EventData, EventDelivery},
    locale::Locale,
    timestamp::Timestamp,
};
use crate::ports::OutboxEvent;

#[derive(Debug, Clone)]
pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub full_name: Option<FullName>,
    pub locale: Locale,
}

impl AccountService {
    #[tracing::instrument(name = "account.register", skip_all)]
    pub async fn register(&self, registration: Registration) -> Result<User, AccountError> {
        let now = self.clock.now();
        let password_hash = self.hasher.hash(&registration.password).await?;
        let otp = OtpChallenge::new(self.otps.new_otp(), now);
        let user = User {
            id: self.ids.new_uuid(),
            email: registration.email,
            password_hash,
            full_name: registration.full_name,
            locale: registration.locale,
            role: Role::User,
            status: AccountStatus::Unverified,
            otp: Some(otp.clone()),
            failed_logins: 0,
            login_blocked_until: None,
            created_at: now,
            updated_at: now,
        };
        let event = self
            .events
            .prepare(EventData::EmailVerificationRequested(
                EmailVerificationPayload {
                    user_id: user.id,
                    recipient: user.email.clone(),
                    otp_code: otp.code.clone(),
                    locale: user.locale,
                    expires_at: Timestamp::new(otp.expires_at),
                },
            ))
            .await
            .map_err(AccountError::EventNotPublished)?;
        let stored = match self.events.delivery() {
            EventDelivery::Outbox => {
                let outbox = [OutboxEvent::user(user.id, event)];
                self.store.insert_user_enqueue(&user, &outbox).await
            }
            EventDelivery::Direct => {
                let publish =
                    Box::pin(async move { self.events.publish_sealed(&event).await.map(drop) });
                self.store.insert_user_then(&user, publish).await
            }
        };
        match stored {
            Ok(()) => {
                tracing::info!(user_id = %user.id, recipient = %user.email.masked(), locale = %user.locale, "user registered; verification e-mail queued");
                Ok(user)
            }
            Err(error) => {
                let error = AccountError::from(error);
                if matches!(error, AccountError::EventNotPublished(_)) {
                    tracing::error!(user_id = %user.id, recipient = %user.email.masked(), error = %error, "registration rolled back");
                }
                Err(error)
            }
        }
    }
}
