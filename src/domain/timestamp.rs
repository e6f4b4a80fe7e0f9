//! `Timestamp`: the one time format on the wire — RFC 3339, UTC, exactly three
//! fractional digits, suffix `Z` (`2026-11-27T10:30:45.123Z`).

use std::fmt;

use crate::domain::serde_str::serde_via_parse;
use chrono::{DateTime, SubsecRound, Utc};

const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// A UTC instant truncated to milliseconds, so that what is serialized and
/// parsed back compares equal to the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// The text is not an RFC 3339 date-time with an offset (`Z` or `±hh:mm`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an RFC 3339 timestamp such as 2026-11-27T10:30:45.123Z")]
pub struct TimestampError;

impl Timestamp {
    /// `at` with everything below the millisecond dropped (truncated, not
    /// rounded); never fails.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(3))
    }

    /// Parses any RFC 3339 timestamp (any offset, any precision) and
    /// normalizes it to UTC milliseconds (truncated); anything else, a date
    /// without a time or a time without an offset included, is
    /// [`TimestampError`].
    pub fn parse(input: &str) -> Result<Self, TimestampError> {
        DateTime::parse_from_rfc3339(input)
            .map(|at| Self::new(at.with_timezone(&Utc)))
            .map_err(|_| TimestampError)
    }

    /// The instant, in UTC, with at most millisecond precision.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self::new(at)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(FORMAT))
    }
}

serde_via_parse!(Timestamp, display);

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn formats_with_exactly_three_fractional_digits_and_z() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, 30, 45).unwrap();
        assert_eq!(Timestamp::new(at).to_string(), "2026-11-27T10:30:45.000Z");
        let precise = at + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(
            Timestamp::new(precise).to_string(),
            "2026-11-27T10:30:45.123Z"
        );
    }

    #[test]
    fn parses_other_offsets_into_utc() {
        let parsed = Timestamp::parse("2026-11-27T17:30:45.5+07:00").unwrap();
        assert_eq!(parsed.to_string(), "2026-11-27T10:30:45.500Z");
        assert_eq!(Timestamp::parse("yesterday"), Err(TimestampError));
    }
}
