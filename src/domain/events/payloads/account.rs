//! The `data` of `email.verification.requested`: everything the e-mail
//! consumer needs to render and send a verification code.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{email_address::Email, locale::Locale, otp::OtpCode, timestamp::Timestamp};

/// A user asked for (or registration issued) a verification code; the one
/// event that carries personal data, because its consumer must address and
/// write the e-mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailVerificationPayload {
    /// The account the code verifies.
    pub user_id: Uuid,
    /// Where the code is sent: a syntactically valid address, domain in
    /// lower case.
    pub recipient: Email,
    /// The code itself: exactly six ASCII digits.
    pub otp_code: OtpCode,
    /// The language of the e-mail: `en` or `vi`.
    pub locale: Locale,
    /// When the code stops being accepted (issue time + 10 minutes); UTC
    /// milliseconds, and in the future when the event is published.
    pub expires_at: Timestamp,
}
