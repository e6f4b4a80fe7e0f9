//! `Env`: reads one variable at a time through a lookup function (the
//! process environment, or a map in tests). An empty value counts as unset;
//! a malformed one is a `ConfigError` naming the variable, the value and
//! what was expected.
//!
//! Why not clap's `env` attributes: they read only the process environment
//! (the unit tests pass a map, in parallel), and their messages would
//! replace the ones operators and tests rely on.

use super::ConfigError;

pub(super) struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub(super) fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value of `var`, `None` when unset or blank.
    pub(super) fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// `default` when `var` is unset; else `parse` of its trimmed value, or
    /// an error saying what was `expected`.
    pub(super) fn parse<T>(
        &self,
        var: &'static str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => parse(raw.trim()).ok_or_else(|| ConfigError {
                var,
                problem: format!("is `{raw}`; expected {expected}"),
            }),
        }
    }

    pub(super) fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(var, default, parse_bool, "true or false")
    }

    pub(super) fn port(&self, var: &'static str, default: u16) -> Result<u16, ConfigError> {
        self.parse(var, default, |s| s.parse().ok(), "a port number 0-65535")
    }

    /// A whole number of seconds within `range` (a `Duration`).
    pub(super) fn seconds(
        &self,
        var: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        expected: &str,
    ) -> Result<std::time::Duration, ConfigError> {
        let secs = self.parse(
            var,
            default,
            |s| s.parse().ok().filter(|n| range.contains(n)),
            expected,
        )?;
        Ok(std::time::Duration::from_secs(secs))
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
