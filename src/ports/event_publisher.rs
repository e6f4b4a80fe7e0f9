//! `EventPublisher`: puts a sealed event on the event bus.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::events::{EventId, EventValidationError, SealedEvent};

/// Why an event was not published. [`PublishError::is_transient`] tells a
/// retry policy whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event broke a rule of DESIGN §2; nothing was sent. Permanent.
    #[error("event rejected: {0}")]
    Rejected(#[from] EventValidationError),
    /// No connection or channel to the broker right now. Transient.
    #[error("event bus unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The broker did not confirm in time. Transient.
    #[error("publish not confirmed within {0:?}")]
    Timeout(Duration),
    /// The broker refused the message (negative acknowledgement). Transient.
    #[error("broker refused the message (nack)")]
    Nacked,
    /// Anything else, e.g. a topology the broker rejects. Permanent.
    #[error("unexpected publish failure")]
    Unexpected(#[source] anyhow::Error),
}

impl PublishError {
    /// Whether trying again may help: true for `Unavailable`, `Timeout` and
    /// `Nacked`, false for `Rejected` and `Unexpected`.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_) | Self::Nacked)
    }

    /// Every value [`PublishError::error_type`] returns, so the failure
    /// counters can start at 0 for each of them.
    pub const ERROR_TYPES: [&'static str; 5] =
        ["validation", "unavailable", "timeout", "nack", "unexpected"];

    /// A short label for the `error_type` metric dimension.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "validation",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Nacked => "nack",
            Self::Unexpected(_) => "unexpected",
        }
    }
}

/// Publishes events on `smap.events` (and wherever an adapter adds copies).
///
/// Contract:
/// - `publish` returns only once the event is safely with the bus (for
///   RabbitMQ: the publisher confirm arrived); `Ok` carries the event's id.
/// - The same sealed event may be published again after an error; consumers
///   de-duplicate by `event_id`.
/// - Implementations do not retry; callers wrap them in a `RetryPolicy`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `event` as sealed (body and routing key unchanged) and
    /// returns its id once the bus holds it.
    ///
    /// # Errors
    ///
    /// `Rejected` when the event fails validation (never retry), `Unavailable`
    /// when the bus cannot be reached, `Timeout` when no confirm came in time,
    /// `Nacked` when the broker refused it, `Unexpected` on any other failure.
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_lists_every_label() {
        let errors = [
            PublishError::Rejected(EventValidationError::TrialLength),
            PublishError::Unavailable(anyhow::anyhow!("down")),
            PublishError::Timeout(Duration::from_secs(1)),
            PublishError::Nacked,
            PublishError::Unexpected(anyhow::anyhow!("odd")),
        ];
        let labels: Vec<_> = errors.iter().map(PublishError::error_type).collect();
        assert_eq!(labels, PublishError::ERROR_TYPES);
    }
}
