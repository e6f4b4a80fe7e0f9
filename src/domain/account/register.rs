//! Use case: register. The user is stored unverified with a fresh OTP, and
//! `email.verification.requested` goes with it in one database
//! transaction: written to the outbox (`EVENT_DELIVERY=outbox`; the relay
//! publishes it, so a broker outage does not refuse the registration), or
//! published inside the transaction (`direct`: if the event cannot be
//! published after the retry policy, nothing is stored and the caller gets a
//! retryable error).

use super::{AccountService, AccountStatus, FullName, OtpChallenge, Password, Role, User};
use crate::domain::{
    email_address::Email,
    events::{EmailVerificationPayload, EventData, EventDelivery},
    locale::Locale,
    timestamp::Timestamp,
};
use crate::ports::{HashError, OutboxEvent, PublishError, StoreError};

/// What a new account is made of, as parsed from the request.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The account's login and where its OTP goes; the store refuses a
    /// second account with it ([`RegisterError::EmailTaken`]).
    pub email: Email,
    /// Hashed before storing; the plain text is dropped with this value.
    pub password: Password,
    /// Display name, if given (1-100 characters, trimmed).
    pub full_name: Option<FullName>,
    /// Language of the account's e-mails.
    pub locale: Locale,
}

/// Why no account was created; in every case nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// An account with this e-mail exists (perhaps created by a concurrent
    /// registration).
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    /// The verification e-mail's event could not be prepared, or (`direct`
    /// delivery) not published inside the transaction, which rolled back.
    #[error("the verification e-mail could not be queued; please retry")]
    EventNotPublished(#[source] PublishError),
    /// The password hasher is saturated (`Busy`) or failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The identity store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegisterError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => RegisterError::EmailTaken,
            StoreError::RolledBack(e) => RegisterError::EventNotPublished(e),
            other => RegisterError::Store(other),
        }
    }
}

impl AccountService {
    /// Stores a new unverified account with a fresh OTP and queues the
    /// verification e-mail with it (see the module docs for how); returns
    /// the account as stored.
    ///
    /// # Errors
    ///
    /// [`RegisterError::EmailTaken`], [`RegisterError::EventNotPublished`]
    /// (retryable), [`RegisterError::Hash`] and [`RegisterError::Store`]
    /// when a port fails.
    #[tracing::instrument(name = "account.register", skip_all)]
    pub async fn register(&self, registration: Registration) -> Result<User, RegisterError> {
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
            .map_err(RegisterError::EventNotPublished)?;
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
                let error = RegisterError::from(error);
                if matches!(error, RegisterError::EventNotPublished(_)) {
                    tracing::error!(user_id = %user.id, recipient = %user.email.masked(), error = %error, "registration rolled back");
                }
                Err(error)
            }
        }
    }
}
