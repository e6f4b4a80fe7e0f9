//! `RoutingKey`: `<domain>.<action>`, lowercase words of `[a-z_]` joined by dots.

use std::{borrow::Cow, fmt};

use crate::domain::serde_str::serde_via_parse;

/// The routing keys this service knows (DESIGN §2).
pub mod keys {
    /// A verification code to e-mail; bound to `smtp_send_email_v2` by
    /// `email.#`.
    pub const EMAIL_VERIFICATION_REQUESTED: &str = "email.verification.requested";
    /// A subscription began (trial or paid).
    pub const SUBSCRIPTION_CREATED: &str = "subscription.created";
    /// A live subscription was cancelled.
    pub const SUBSCRIPTION_CANCELLED: &str = "subscription.cancelled";
    /// A subscription changed status for another reason than cancellation.
    pub const SUBSCRIPTION_STATUS_CHANGED: &str = "subscription.status_changed";
    /// A project crossed its progress finish line.
    pub const JOB_COMPLETED: &str = "job.completed";
    /// Reserved: the payload type exists, nothing publishes it yet.
    pub const PROJECT_CREATED: &str = "project.created";

    /// Every key above, each once; each one has a payload type and a
    /// committed JSON Schema.
    pub const ALL: [&str; 6] = [
        EMAIL_VERIFICATION_REQUESTED,
        SUBSCRIPTION_CREATED,
        SUBSCRIPTION_CANCELLED,
        SUBSCRIPTION_STATUS_CHANGED,
        JOB_COMPLETED,
        PROJECT_CREATED,
    ];
}

/// AMQP short strings carry at most 255 bytes.
const MAX_LEN: usize = 255;

/// Why a string is not a routing key. The length is checked first, then
/// each word, then their number (so `""` is a `BadWord`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingKeyError {
    /// Over 255 bytes, the longest AMQP short string.
    #[error("must be at most {MAX_LEN} bytes")]
    TooLong,
    /// A single word: there is no action.
    #[error("must be `<domain>.<action>`: at least two words joined by dots")]
    TooFewWords,
    /// An empty word (leading, trailing or doubled dot, or the empty
    /// string), or a character outside `a-z` and `_`; so the AMQP
    /// wildcards `*` and `#` never get into a key.
    #[error("words must be non-empty and made of `a-z` and `_`")]
    BadWord,
}

/// A routing key: two or more words of `a-z` and `_` joined by dots, at
/// most 255 bytes (`email.verification.requested`). The first word is the
/// domain, the rest the action. It is the AMQP routing key and `type` of the
/// message, and `payload.routing_key` in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutingKey(Cow<'static, str>);

impl RoutingKey {
    /// Checks `input` against the grammar; fails with the first
    /// [`RoutingKeyError`] it breaks. Any well-formed key passes, known to
    /// [`keys`] or not.
    pub fn parse(input: &str) -> Result<Self, RoutingKeyError> {
        Self::check(input)?;
        Ok(Self(Cow::Owned(input.to_owned())))
    }

    /// For the constants of [`keys`]; a test checks they all pass `parse`.
    pub(crate) const fn known(key: &'static str) -> Self {
        Self(Cow::Borrowed(key))
    }

    fn check(input: &str) -> Result<(), RoutingKeyError> {
        if input.len() > MAX_LEN {
            return Err(RoutingKeyError::TooLong);
        }
        let words: Vec<&str> = input.split('.').collect();
        if words
            .iter()
            .any(|w| w.is_empty() || !w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            return Err(RoutingKeyError::BadWord);
        }
        if words.len() < 2 {
            return Err(RoutingKeyError::TooFewWords);
        }
        Ok(())
    }

    /// The key as text, exactly as parsed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first word: `email` in `email.verification.requested`.
    pub fn domain(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(domain, _)| domain)
    }

    /// The key without its first word: `verification.requested`; never
    /// empty, as a key has at least two words.
    pub fn action(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, action)| action)
    }
}

impl fmt::Display for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_parse!(RoutingKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_key_is_a_valid_routing_key() {
        for key in keys::ALL {
            assert_eq!(RoutingKey::parse(key).unwrap(), RoutingKey::known(key));
        }
    }

    #[test]
    fn splits_domain_and_action() {
        let key = RoutingKey::parse("email.verification.requested").unwrap();
        assert_eq!(key.domain(), "email");
        assert_eq!(key.action(), "verification.requested");
        let key = RoutingKey::parse("subscription.status_changed").unwrap();
        assert_eq!(key.action(), "status_changed");
    }

    #[test]
    fn rejects_keys_outside_the_grammar() {
        let cases = [
            ("email", RoutingKeyError::TooFewWords),
            ("", RoutingKeyError::BadWord),
            ("email.", RoutingKeyError::BadWord),
            (".email.sent", RoutingKeyError::BadWord),
            ("email..sent", RoutingKeyError::BadWord),
            ("Email.sent", RoutingKeyError::BadWord),
            ("email.sent2", RoutingKeyError::BadWord),
            ("email.*", RoutingKeyError::BadWord),
            ("email.#", RoutingKeyError::BadWord),
            ("email.sent-now", RoutingKeyError::BadWord),
        ];
        for (input, expected) in cases {
            assert_eq!(RoutingKey::parse(input), Err(expected), "{input:?}");
        }
        let long = format!("a.{}", "b".repeat(254));
        assert_eq!(RoutingKey::parse(&long), Err(RoutingKeyError::TooLong));
    }
}
