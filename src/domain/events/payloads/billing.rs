//! The `data` of the subscription events. They carry ids only: there is no
//! field that could hold an e-mail address or a name. Every timestamp is UTC
//! with millisecond precision.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CancellationReason, TransitionReason};
use crate::domain::{billing::PlanCode, billing::SubscriptionStatus, timestamp::Timestamp};

/// A subscription began: a trial, or a paid period. Idempotency key: the
/// subscription id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionCreatedPayload {
    /// The new subscription; also the envelope's `idempotency_key`.
    pub subscription_id: Uuid,
    /// The account that holds it.
    pub user_id: Uuid,
    /// The plan subscribed to; a plan of the catalogue when published.
    pub plan_code: PlanCode,
    /// `trialing` or `active`: the only statuses a subscription starts in.
    pub status: SubscriptionStatus,
    /// When the subscription was created.
    pub created_at: Timestamp,
    /// Required for `trialing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_start: Option<Timestamp>,
    /// Required for `trialing`: exactly 14 days after `trial_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_end: Option<Timestamp>,
    /// Required for a paid (`active`) subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_start: Option<Timestamp>,
    /// Required for a paid (`active`) subscription: after `subscription_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_end: Option<Timestamp>,
}

/// A live subscription was cancelled, by its holder, by an administrator, or
/// by the expiry of its trial. Idempotency key: the subscription id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionCancelledPayload {
    /// The cancelled subscription; also the envelope's `idempotency_key`.
    pub subscription_id: Uuid,
    /// The account that holds it.
    pub user_id: Uuid,
    /// The plan it was on; a plan of the catalogue when published.
    pub plan_code: PlanCode,
    /// The status before the cancellation; never `cancelled`.
    pub previous_status: SubscriptionStatus,
    /// Always `cancelled`.
    pub new_status: SubscriptionStatus,
    /// When the cancellation happened.
    pub cancelled_at: Timestamp,
    /// `user_requested`, `trial_expired`, `admin_action`, or the user's own
    /// words (1-500 characters).
    pub cancellation_reason: CancellationReason,
    /// Until when the time already granted stays usable: the end of the
    /// trial or paid period when it is still ahead, `cancelled_at` otherwise
    /// (for `trial_expired`, the end of the trial).
    pub effective_until: Timestamp,
    /// Set exactly when the reason is `admin_action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user_id: Option<Uuid>,
}

/// A subscription moved from one status to another for a reason other than
/// a cancellation: an upgrade, a failed payment, the end of its period.
/// Idempotency key: the subscription id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionStatusChangedPayload {
    /// The subscription; also the envelope's `idempotency_key`.
    pub subscription_id: Uuid,
    /// The account that holds it.
    pub user_id: Uuid,
    /// The plan after the change; a plan of the catalogue when published.
    pub plan_code: PlanCode,
    /// The status before the change.
    pub previous_status: SubscriptionStatus,
    /// The status after the change; never equal to `previous_status`.
    pub new_status: SubscriptionStatus,
    /// Why: `upgraded`, `payment_failed`, `subscription_ended`, ...
    pub transition_reason: TransitionReason,
    /// When the change happened.
    pub changed_at: Timestamp,
    /// The new paid period, when the transition starts one (`upgraded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_start: Option<Timestamp>,
    /// End of the new paid period: set together with `subscription_start`,
    /// and after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_end: Option<Timestamp>,
}
