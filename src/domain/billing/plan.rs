//! A plan as stored, and the billing cycle that sets its paid period.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::PlanCode;

/// How long one paid period of a plan lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingCycle {
    /// One calendar month (clamped to the month's last day).
    Monthly,
    /// Twelve calendar months.
    Yearly,
}

impl BillingCycle {
    /// The wire and database name: `monthly` or `yearly`.
    pub fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Yearly => "yearly",
        }
    }

    /// The cycle named exactly `s`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "monthly" => Some(Self::Monthly),
            "yearly" => Some(Self::Yearly),
            _ => None,
        }
    }

    /// The end of a paid period that starts at `start` (Jan 31 + 1 month
    /// is Feb 28/29); `start` itself if the date would overflow.
    pub fn period_end(self, start: DateTime<Utc>) -> DateTime<Utc> {
        let months = match self {
            BillingCycle::Monthly => Months::new(1),
            BillingCycle::Yearly => Months::new(12),
        };
        start.checked_add_months(months).unwrap_or(start)
    }
}

/// A plan of the catalogue as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Never changes; the admin routes name the plan by it.
    pub id: Uuid,
    /// Never changes, unique; subscriptions and events name the plan by it.
    pub code: PlanCode,
    /// Display name.
    pub name: String,
    /// Free text for the catalogue, if any.
    pub description: Option<String>,
    /// Price per billing cycle in the currency's minor unit (cents, đồng);
    /// `0` for the free plan; not negative (the API refuses it).
    pub price_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// How long one paid period lasts.
    pub billing_cycle: BillingCycle,
    /// UTC; when the plan was created.
    pub created_at: DateTime<Utc>,
    /// UTC; the last edit, `>= created_at`; edits are conditional on it.
    pub updated_at: DateTime<Utc>,
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
