//! `PlanCode`: the stable, human-readable key of a plan (`free`, `pro`, ...).

use std::fmt;

use crate::domain::serde_str::serde_via_parse;

const MAX_LEN: usize = 32;

/// The plan every verified account starts its trial on.
pub const FREE_PLAN: &str = "free";

/// Why a string is not a [`PlanCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be 1-{MAX_LEN} characters of `a-z`, `0-9`, `_`, `-`, starting with a letter or digit"
)]
pub struct PlanCodeError;

/// 1-32 characters of `a-z`, `0-9`, `_`, `-`, starting with a letter or
/// digit; compared and ordered as the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanCode(String);

impl PlanCode {
    /// `input` as a code, exactly as given (no trimming or lower-casing).
    ///
    /// # Errors
    ///
    /// [`PlanCodeError`] when `input` breaks the form above.
    pub fn parse(input: &str) -> Result<Self, PlanCodeError> {
        let first_ok = input
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if first_ok && rest_ok && input.len() <= MAX_LEN {
            Ok(Self(input.to_owned()))
        } else {
            Err(PlanCodeError)
        }
    }

    /// The code of the free plan, [`FREE_PLAN`].
    pub fn free() -> Self {
        Self(FREE_PLAN.to_owned())
    }

    /// The code as stored and sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_parse!(PlanCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_codes_are_lowercase_slugs() {
        for good in ["free", "pro", "pro_2026", "team-10", "9x"] {
            assert!(PlanCode::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Pro", "-pro", "pro plan", "p".repeat(33).as_str()] {
            assert_eq!(PlanCode::parse(bad), Err(PlanCodeError), "{bad:?}");
        }
    }
}
