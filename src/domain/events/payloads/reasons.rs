//! The two free-text-ish reasons of the subscription events: why a
//! subscription was cancelled, and why it changed status. Both travel as a
//! JSON string read back through their own `parse`.

use std::fmt;

use crate::domain::serde_str::serde_via_parse;

const MAX_REASON_CHARS: usize = 500;

/// The text is empty once trimmed, over 500 characters, or holds a control
/// character other than a line break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-{MAX_REASON_CHARS} characters of text without control characters")]
pub struct CancellationReasonError;

/// `user_requested`, `trial_expired`, `admin_action`, or the user's own words.
///
/// Always 1-500 characters, trimmed, with no control character but `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationReason(String);

impl CancellationReason {
    /// The holder cancelled without giving a reason.
    pub const USER_REQUESTED: &'static str = "user_requested";
    /// The expiry sweep ended a trial that was not converted.
    pub const TRIAL_EXPIRED: &'static str = "trial_expired";
    /// An administrator cancelled someone else's subscription; the event
    /// then names the administrator in `admin_user_id`.
    pub const ADMIN_ACTION: &'static str = "admin_action";

    /// Trims the text; rejects empty, over-long or control-character text
    /// (line breaks are allowed).
    pub fn parse(input: &str) -> Result<Self, CancellationReasonError> {
        let text = input.trim();
        let ok = !text.is_empty()
            && text.chars().count() <= MAX_REASON_CHARS
            && !text.chars().any(|c| c.is_control() && c != '\n');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(CancellationReasonError)
        }
    }

    /// [`Self::USER_REQUESTED`]: the reason when the holder gives none.
    pub fn user_requested() -> Self {
        Self(Self::USER_REQUESTED.to_owned())
    }

    /// [`Self::TRIAL_EXPIRED`]: the reason of the expiry sweep.
    pub fn trial_expired() -> Self {
        Self(Self::TRIAL_EXPIRED.to_owned())
    }

    /// [`Self::ADMIN_ACTION`]: the reason of an administrator's cancellation.
    pub fn admin_action() -> Self {
        Self(Self::ADMIN_ACTION.to_owned())
    }

    /// The text is exactly `admin_action`, whoever wrote it: such an event
    /// must name an administrator.
    pub fn is_admin_action(&self) -> bool {
        self.0 == Self::ADMIN_ACTION
    }

    /// The reason as it goes on the wire and into the database.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CancellationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_parse!(CancellationReason);

/// The text is empty, over 64 bytes, or holds anything but `a-z` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-64 characters of `a-z` and `_`")]
pub struct TransitionReasonError;

/// Why a subscription changed status: `upgraded`, `payment_failed`,
/// `subscription_ended`, ...; a snake_case word list.
///
/// Always 1-64 characters of `a-z` and `_`; the list is open, so consumers
/// must accept reasons they do not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionReason(String);

impl TransitionReason {
    /// The holder moved to a paid plan; the event carries the new period.
    pub const UPGRADED: &'static str = "upgraded";
    /// A payment of an `active` subscription failed: it is now `past_due`.
    pub const PAYMENT_FAILED: &'static str = "payment_failed";
    /// The expiry sweep ended a paid period that was not renewed.
    pub const SUBSCRIPTION_ENDED: &'static str = "subscription_ended";

    /// Accepts 1-64 characters of `a-z` and `_`, untrimmed; anything else
    /// is [`TransitionReasonError`].
    pub fn parse(input: &str) -> Result<Self, TransitionReasonError> {
        let ok = !input.is_empty()
            && input.len() <= 64
            && input.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(TransitionReasonError)
        }
    }

    /// The reason as it goes on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

serde_via_parse!(TransitionReason);
