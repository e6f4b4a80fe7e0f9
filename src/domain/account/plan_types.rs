//! Plans and subscriptions as stored.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{plan::PlanCode, subscription::SubscriptionStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingCycle {
    Monthly,
    Yearly,
}

impl BillingCycle {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Yearly => "yearly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "monthly" => Some(Self::Monthly),
            "yearly" => Some(Self::Yearly),
            _ => None,
        }
    }

    /// The end of a paid period that starts at `start`.
    pub fn period_end(self, start: DateTime<Utc>) -> DateTime<Utc> {
        let months = match self {
            BillingCycle::Monthly => Months::new(1),
            BillingCycle::Yearly => Months::new(12),
        };
        start.checked_add_months(months).unwrap_or(start)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: Uuid,
    pub code: PlanCode,
    pub name: String,
    pub description: Option<String>,
    /// Price in the currency's minor unit (cents, đồng).
    pub price_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub billing_cycle: BillingCycle,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn billing_cycles_end_a_month_or_a_year_later() {
        let start = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        assert_eq!(
            BillingCycle::Monthly.period_end(start),
            Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap()
        );
        assert_eq!(
            BillingCycle::Yearly.period_end(start),
            Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).unwrap()
        );
    }
}
