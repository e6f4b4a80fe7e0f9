//! Typed `data` of every event (DESIGN §2). Field types enforce what they can
//! (UUIDs, e-mail syntax, six-digit OTP, locale, status); the cross-field and
//! time rules live in `validation.rs`. Subscription payloads carry ids only:
//! there is no field that could hold an e-mail address or a name.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::serde_str::serde_via_parse;
use uuid::Uuid;

use super::{EnvelopeParseError, RoutingKey, keys};
use crate::domain::{
    billing::PlanCode, billing::SubscriptionStatus, email_address::Email, locale::Locale,
    otp::OtpCode, progress::ProjectId, timestamp::Timestamp,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailVerificationPayload {
    pub user_id: Uuid,
    pub recipient: Email,
    pub otp_code: OtpCode,
    pub locale: Locale,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionCreatedPayload {
    pub subscription_id: Uuid,
    pub user_id: Uuid,
    pub plan_code: PlanCode,
    pub status: SubscriptionStatus,
    pub created_at: Timestamp,
    /// Required for `trialing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_end: Option<Timestamp>,
    /// Required for a paid (`active`) subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_end: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionCancelledPayload {
    pub subscription_id: Uuid,
    pub user_id: Uuid,
    pub plan_code: PlanCode,
    pub previous_status: SubscriptionStatus,
    pub new_status: SubscriptionStatus,
    pub cancelled_at: Timestamp,
    pub cancellation_reason: CancellationReason,
    pub effective_until: Timestamp,
    /// Set exactly when the reason is `admin_action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionStatusChangedPayload {
    pub subscription_id: Uuid,
    pub user_id: Uuid,
    pub plan_code: PlanCode,
    pub previous_status: SubscriptionStatus,
    pub new_status: SubscriptionStatus,
    pub transition_reason: TransitionReason,
    pub changed_at: Timestamp,
    /// The new paid period, when the transition starts one (`upgraded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_end: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobCompletedPayload {
    pub project_id: ProjectId,
    pub total: u64,
    pub done: u64,
    pub errors: u64,
    pub completed_at: Timestamp,
}

/// Reserved for the Project service's `project.created`; nothing publishes it yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectCreatedPayload {
    pub project_id: ProjectId,
    pub user_id: Uuid,
    pub created_at: Timestamp,
}

/// The data of one event; the variant decides the routing key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    EmailVerificationRequested(EmailVerificationPayload),
    SubscriptionCreated(SubscriptionCreatedPayload),
    SubscriptionCancelled(SubscriptionCancelledPayload),
    SubscriptionStatusChanged(SubscriptionStatusChangedPayload),
    JobCompleted(JobCompletedPayload),
    ProjectCreated(ProjectCreatedPayload),
}

impl EventData {
    pub fn routing_key(&self) -> RoutingKey {
        RoutingKey::known(match self {
            Self::EmailVerificationRequested(_) => keys::EMAIL_VERIFICATION_REQUESTED,
            Self::SubscriptionCreated(_) => keys::SUBSCRIPTION_CREATED,
            Self::SubscriptionCancelled(_) => keys::SUBSCRIPTION_CANCELLED,
            Self::SubscriptionStatusChanged(_) => keys::SUBSCRIPTION_STATUS_CHANGED,
            Self::JobCompleted(_) => keys::JOB_COMPLETED,
            Self::ProjectCreated(_) => keys::PROJECT_CREATED,
        })
    }

    /// Subscription events carry their subscription id (DESIGN §2); the
    /// others carry none.
    pub fn idempotency_key(&self) -> Option<String> {
        match self {
            Self::SubscriptionCreated(p) => Some(p.subscription_id.to_string()),
            Self::SubscriptionCancelled(p) => Some(p.subscription_id.to_string()),
            Self::SubscriptionStatusChanged(p) => Some(p.subscription_id.to_string()),
            _ => None,
        }
    }

    /// The plan the event names, which must exist when it is published.
    pub fn plan_code(&self) -> Option<&PlanCode> {
        match self {
            Self::SubscriptionCreated(p) => Some(&p.plan_code),
            Self::SubscriptionCancelled(p) => Some(&p.plan_code),
            Self::SubscriptionStatusChanged(p) => Some(&p.plan_code),
            _ => None,
        }
    }

    /// Reads `data` as the payload type of `routing_key`.
    pub fn from_json(
        routing_key: &RoutingKey,
        data: serde_json::Value,
    ) -> Result<Self, EnvelopeParseError> {
        fn typed<T: serde::de::DeserializeOwned>(
            data: serde_json::Value,
        ) -> Result<T, EnvelopeParseError> {
            serde_path_to_error::deserialize(data).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "payload.data".to_owned()
                } else {
                    format!("payload.data.{path}")
                };
                EnvelopeParseError::Malformed {
                    field,
                    message: e.inner().to_string(),
                }
            })
        }
        Ok(match routing_key.as_str() {
            keys::EMAIL_VERIFICATION_REQUESTED => Self::EmailVerificationRequested(typed(data)?),
            keys::SUBSCRIPTION_CREATED => Self::SubscriptionCreated(typed(data)?),
            keys::SUBSCRIPTION_CANCELLED => Self::SubscriptionCancelled(typed(data)?),
            keys::SUBSCRIPTION_STATUS_CHANGED => Self::SubscriptionStatusChanged(typed(data)?),
            keys::JOB_COMPLETED => Self::JobCompleted(typed(data)?),
            keys::PROJECT_CREATED => Self::ProjectCreated(typed(data)?),
            other => return Err(EnvelopeParseError::UnknownRoutingKey(other.to_owned())),
        })
    }
}

const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-{MAX_REASON_CHARS} characters of text without control characters")]
pub struct CancellationReasonError;

/// `user_requested`, `trial_expired`, `admin_action`, or the user's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationReason(String);

impl CancellationReason {
    pub const USER_REQUESTED: &'static str = "user_requested";
    pub const TRIAL_EXPIRED: &'static str = "trial_expired";
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

    pub fn user_requested() -> Self {
        Self(Self::USER_REQUESTED.to_owned())
    }

    pub fn trial_expired() -> Self {
        Self(Self::TRIAL_EXPIRED.to_owned())
    }

    pub fn admin_action() -> Self {
        Self(Self::ADMIN_ACTION.to_owned())
    }

    pub fn is_admin_action(&self) -> bool {
        self.0 == Self::ADMIN_ACTION
    }

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-64 characters of `a-z` and `_`")]
pub struct TransitionReasonError;

/// Why a subscription changed status: `upgraded`, `payment_failed`,
/// `subscription_ended`, ...; a snake_case word list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionReason(String);

impl TransitionReason {
    pub const UPGRADED: &'static str = "upgraded";
    pub const PAYMENT_FAILED: &'static str = "payment_failed";
    pub const SUBSCRIPTION_ENDED: &'static str = "subscription_ended";

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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

serde_via_parse!(TransitionReason);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(k: &str) -> RoutingKey {
        RoutingKey::parse(k).unwrap()
    }

    fn verification_json() -> serde_json::Value {
        json!({
            "user_id": "0b7e6a52-1f0c-4c1e-9a57-3f5d2f1f9c11",
            "recipient": "ann@example.com",
            "otp_code": "123456",
            "locale": "vi",
            "expires_at": "2026-11-27T10:40:45.123Z"
        })
    }

    fn field_of(err: EnvelopeParseError) -> String {
        match err {
            EnvelopeParseError::Malformed { field, .. } => field,
            other => panic!("expected a malformed field, got {other}"),
        }
    }

    #[test]
    fn parses_a_verification_payload() {
        let data = EventData::from_json(
            &key(keys::EMAIL_VERIFICATION_REQUESTED),
            verification_json(),
        )
        .unwrap();
        let EventData::EmailVerificationRequested(p) = data else {
            panic!("wrong variant")
        };
        assert_eq!(p.locale, Locale::Vi);
        assert_eq!(p.otp_code.as_str(), "123456");
    }

    #[test]
    fn each_field_rule_fails_with_the_field_named() {
        let cases = [
            ("recipient", json!("not-an-email")),
            ("otp_code", json!("12345")),
            ("otp_code", json!("abcdef")),
            ("locale", json!("fr")),
            ("user_id", json!("not-a-uuid")),
            ("expires_at", json!("tomorrow")),
        ];
        for (field, bad) in cases {
            let mut data = verification_json();
            data[field] = bad;
            let err =
                EventData::from_json(&key(keys::EMAIL_VERIFICATION_REQUESTED), data).unwrap_err();
            assert_eq!(field_of(err), format!("payload.data.{field}"));
        }
    }

    #[test]
    fn a_missing_required_field_is_reported() {
        let mut data = verification_json();
        data.as_object_mut().unwrap().remove("otp_code");
        let err = EventData::from_json(&key(keys::EMAIL_VERIFICATION_REQUESTED), data).unwrap_err();
        let EnvelopeParseError::Malformed { message, .. } = err else {
            panic!()
        };
        assert!(message.contains("missing field `otp_code`"), "{message}");
    }

    #[test]
    fn statuses_outside_the_enum_are_rejected() {
        let data = json!({
            "subscription_id": "0b7e6a52-1f0c-4c1e-9a57-3f5d2f1f9c11",
            "user_id": "0b7e6a52-1f0c-4c1e-9a57-3f5d2f1f9c12",
            "plan_code": "free",
            "status": "paused",
            "created_at": "2026-11-27T10:40:45.123Z"
        });
        let err = EventData::from_json(&key(keys::SUBSCRIPTION_CREATED), data).unwrap_err();
        assert_eq!(field_of(err), "payload.data.status");
    }

    #[test]
    fn cancellation_reasons_are_trimmed_bounded_text() {
        assert_eq!(
            CancellationReason::parse("  too pricey ").unwrap().as_str(),
            "too pricey"
        );
        assert!(CancellationReason::parse("line one\nline two").is_ok());
        assert!(CancellationReason::parse("   ").is_err());
        assert!(CancellationReason::parse("bell\u{7}").is_err());
        assert!(CancellationReason::parse(&"x".repeat(501)).is_err());
        assert!(CancellationReason::admin_action().is_admin_action());
    }

    #[test]
    fn transition_reasons_are_snake_case_words() {
        assert!(TransitionReason::parse(TransitionReason::PAYMENT_FAILED).is_ok());
        assert!(TransitionReason::parse("Payment Failed").is_err());
        assert!(TransitionReason::parse("").is_err());
    }
}
