//! A plan as stored, and the billing cycle that sets its paid period.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::PlanCode;

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
