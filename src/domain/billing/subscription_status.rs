//! The statuses a subscription moves through, shared by the use cases,
//! the stores and the events. `trialing` (the free trial runs) moves to
//! `active` (a paid period runs) or `cancelled`; `active` to `past_due`
//! (its payment failed; still live), `cancelled` or `expired` (the paid
//! period ended); `past_due` to `cancelled` or `expired`. `cancelled` and
//! `expired` are final.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Length of the free trial every verified account gets.
pub const TRIAL_DAYS: i64 = 14;

/// Where a subscription stands. Moves only forward (see the module docs);
/// travels as its snake_case name. Its JSON Schema is written by hand in
/// `events::schemas`, so these docs do not turn the published enum into a
/// `oneOf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// The free trial runs ([`TRIAL_DAYS`] from verification); live.
    Trialing,
    /// A paid period runs; live.
    Active,
    /// Ended by the user, an admin or the trial's end; final.
    Cancelled,
    /// The paid period ended; final.
    Expired,
    /// The payment of the active period failed; still live.
    PastDue,
}

/// Why a string is not a [`SubscriptionStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of trialing, active, cancelled, expired, past_due")]
pub struct SubscriptionStatusError;

impl SubscriptionStatus {
    /// Every status, in the order of the lifecycle.
    pub const ALL: [SubscriptionStatus; 5] = [
        Self::Trialing,
        Self::Active,
        Self::Cancelled,
        Self::Expired,
        Self::PastDue,
    ];

    /// The wire and database name (`trialing`, ..., `past_due`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::PastDue => "past_due",
        }
    }
}

impl FromStr for SubscriptionStatus {
    type Err = SubscriptionStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(SubscriptionStatusError)
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        for status in SubscriptionStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("canceled".parse::<SubscriptionStatus>().is_err());
    }
}
