//! A subscription as stored, and the compare-and-set patch that moves it
//! from one status to the next.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PlanCode, SubscriptionStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_code: PlanCode,
    pub status: SubscriptionStatus,
    pub trial_start: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancellation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    /// Trialing, active or past due: the one a user may hold at a time.
    pub fn is_live(&self) -> bool {
        matches!(
            self.status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        )
    }
}

/// One subscription transition: the status it leaves (`from`), the one it
/// enters and the fields it sets; what it does not name stays as stored.
/// Stores apply it only while the row is still in `from` (compare-and-set):
/// every transition moves forward in the status graph, so the status is
/// the row's version.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionPatch {
    pub from: SubscriptionStatus,
    pub status: SubscriptionStatus,
    pub plan_code: Option<PlanCode>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancellation_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl SubscriptionPatch {
    /// `from` to `status` at `now`, setting nothing else.
    pub fn new(from: SubscriptionStatus, status: SubscriptionStatus, now: DateTime<Utc>) -> Self {
        Self {
            from,
            status,
            plan_code: None,
            period_start: None,
            period_end: None,
            cancelled_at: None,
            cancellation_reason: None,
            updated_at: now,
        }
    }

    /// The subscription as the patch leaves it (for in-memory stores).
    pub fn apply(&self, s: &mut Subscription) {
        s.status = self.status;
        if let Some(code) = &self.plan_code {
            s.plan_code = code.clone();
        }
        if let Some(at) = self.period_start {
            s.period_start = Some(at);
        }
        if let Some(at) = self.period_end {
            s.period_end = Some(at);
        }
        if let Some(at) = self.cancelled_at {
            s.cancelled_at = Some(at);
        }
        if let Some(reason) = &self.cancellation_reason {
            s.cancellation_reason = Some(reason.clone());
        }
        s.updated_at = self.updated_at;
    }
}
