//! Use case: send the OTP again. The password check takes its slot first
//! (it is a password oracle like login), then the re-send takes the
//! cool-down slot in one atomic step, so simultaneous re-sends send one
//! e-mail. The unexpired code is re-sent (a new one once it expired or was
//! locked by wrong attempts). With `EVENT_DELIVERY=outbox` the e-mail's
//! event is written in the transaction that takes the slot; with `direct`
//! it is published after, and the slot given back if that fails.

use chrono::Duration;

use super::{
    AccountService, AccountStatus, MAX_OTP_ATTEMPTS, OTP_RESEND_COOLDOWN_SECONDS, OtpChallenge,
    Password, User, login::PasswordRefused,
};
use crate::{
    domain::{
        email_address::Email,
        events::{EmailVerificationPayload, EventData, EventDelivery},
        timestamp::Timestamp,
    },
    ports::{HashError, OutboxEvent, PublishError, ResendSlot, StoreError, UserRef},
};

const COOLDOWN: Duration = Duration::seconds(OTP_RESEND_COOLDOWN_SECONDS);

/// Why no OTP e-mail was sent.
#[derive(Debug, thiserror::Error)]
pub enum SendOtpError {
    /// No account has this e-mail, or the password is not its password.
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    /// The account used up its password checks (shared with login); none
    /// runs until the lock ends.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    LoginThrottled {
        /// Seconds until the account takes password checks again; `>= 1`.
        retry_after_secs: i64,
    },
    /// The account is verified already: there is no OTP to send.
    #[error("the account is already verified")]
    AlreadyVerified,
    /// An OTP e-mail went out less than
    /// [`OTP_RESEND_COOLDOWN_SECONDS`](super::OTP_RESEND_COOLDOWN_SECONDS)
    /// ago; nothing was sent.
    #[error("an OTP was sent moments ago; retry in {retry_after_secs} s")]
    OtpCooldown {
        /// Seconds until a re-send is taken; `>= 1`.
        retry_after_secs: i64,
    },
    /// `direct` delivery: the e-mail's event could not be published after
    /// the retry policy; the cool-down slot was given back, so a retry is
    /// taken at once.
    #[error("the verification e-mail could not be queued; please retry")]
    EventNotPublished(#[source] PublishError),
    /// The password hasher is saturated (`Busy`) or failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The identity store failed; nothing was sent.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PasswordRefused> for SendOtpError {
    fn from(refused: PasswordRefused) -> Self {
        match refused {
            PasswordRefused::Wrong => SendOtpError::InvalidCredentials,
            PasswordRefused::Throttled(retry_after_secs) => {
                SendOtpError::LoginThrottled { retry_after_secs }
            }
            PasswordRefused::Hash(e) => SendOtpError::Hash(e),
            PasswordRefused::Store(e) => SendOtpError::Store(e),
        }
    }
}

impl AccountService {
    /// Sends the account's OTP again (the same code while it is valid and
    /// not locked, else a fresh one), for the right password of an
    /// unverified account; at most one e-mail per cool-down.
    ///
    /// # Errors
    ///
    /// [`SendOtpError::InvalidCredentials`], [`SendOtpError::LoginThrottled`]
    /// from the password check; [`SendOtpError::AlreadyVerified`] for a
    /// verified account; [`SendOtpError::OtpCooldown`] within the cool-down;
    /// [`SendOtpError::EventNotPublished`] when `direct` delivery could not
    /// publish; [`SendOtpError::Hash`] and [`SendOtpError::Store`] when a
    /// port fails.
    #[tracing::instrument(name = "account.send_otp", skip_all)]
    pub async fn send_otp(&self, email: &Email, password: &Password) -> Result<(), SendOtpError> {
        let now = self.clock.now();
        let user = self
            .check_password(UserRef::Email(email), password, now)
            .await?;
        if user.status == AccountStatus::Active {
            return Err(SendOtpError::AlreadyVerified);
        }
        let fresh = OtpChallenge::new(self.otps.new_otp(), now);
        let outbox = self.events.delivery() == EventDelivery::Outbox;
        // Sealed inside the store transaction, for the challenge it grants
        // (the kept code or the fresh one). No plan is named: no catalogue
        // look-up is needed.
        let seal = move |challenge: &OtpChallenge, user: &User| -> Vec<OutboxEvent> {
            if !outbox {
                return Vec::new();
            }
            match self.events.seal(verification(challenge, user)) {
                Ok(event) => vec![OutboxEvent::user(user.id, event)],
                Err(error) => {
                    tracing::error!(user_id = %user.id, error = %error, "OTP e-mail event not written");
                    Vec::new()
                }
            }
        };
        let (challenge, user) = match self
            .store
            .take_resend_slot(user.id, now, COOLDOWN, MAX_OTP_ATTEMPTS, &fresh, &seal)
            .await?
        {
            ResendSlot::Granted(challenge, user) => (challenge, user),
            ResendSlot::Refused(None) => return Err(SendOtpError::InvalidCredentials),
            ResendSlot::Refused(Some(user)) if user.status == AccountStatus::Active => {
                return Err(SendOtpError::AlreadyVerified);
            }
            ResendSlot::Refused(Some(user)) => {
                let ready_at = user.otp.map_or(now, |otp| otp.sent_at + COOLDOWN);
                return Err(SendOtpError::OtpCooldown {
                    retry_after_secs: (ready_at - now).num_seconds().max(1),
                });
            }
        };
        if outbox {
            tracing::info!(user_id = %user.id, recipient = %user.email.masked(), "OTP sent again (outbox)");
            return Ok(());
        }
        if let Err(error) = self.events.publish(verification(&challenge, &user)).await {
            // Give the slot back so the cool-down does not block a retry.
            if let Err(e) = self.store.release_resend_slot(user.id, now, COOLDOWN).await {
                tracing::error!(user_id = %user.id, error = %e, "re-send slot not released");
            }
            tracing::error!(user_id = %user.id, error = %error, "OTP e-mail could not be queued");
            return Err(SendOtpError::EventNotPublished(error));
        }
        tracing::info!(user_id = %user.id, recipient = %user.email.masked(), "OTP sent again");
        Ok(())
    }
}

fn verification(challenge: &OtpChallenge, user: &User) -> EventData {
    EventData::EmailVerificationRequested(EmailVerificationPayload {
        user_id: user.id,
        recipient: user.email.clone(),
        otp_code: challenge.code.clone(),
        locale: user.locale,
        expires_at: Timestamp::new(challenge.expires_at),
    })
}
