//! The background work: the expiry sweep, the completion relay, event
//! delivery (`EVENT_DELIVERY`) and the e-mail consumers' concurrency.

use std::time::Duration;

use super::{ConfigError, env::Env};
use crate::domain::events::EventDelivery;

/// The workers section of `Settings`.
pub(super) struct Workers {
    pub(super) expiry_sweep_interval: Duration,
    pub(super) completion_relay_interval: Duration,
    pub(super) event_delivery: EventDelivery,
    pub(super) email_concurrency: usize,
    pub(super) email_prefetch: u16,
}

pub(super) fn workers<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Workers, ConfigError> {
    Ok(Workers {
        expiry_sweep_interval: env.seconds(
            "EXPIRY_SWEEP_INTERVAL_SECS",
            300,
            1..=u64::MAX,
            "a number of seconds above 0",
        )?,
        completion_relay_interval: env.seconds(
            "COMPLETION_RELAY_INTERVAL_SECS",
            5,
            1..=3600,
            "a number of seconds from 1 to 3600",
        )?,
        email_concurrency: env.parse(
            "EMAIL_CONCURRENCY",
            16,
            |s| s.parse().ok().filter(|n| (1..=1024).contains(n)),
            "a number from 1 to 1024",
        )?,
        email_prefetch: env.parse(
            "EMAIL_PREFETCH",
            32,
            |s| s.parse().ok().filter(|n| *n > 0),
            "a number from 1 to 65535",
        )?,
        event_delivery: env.parse(
            "EVENT_DELIVERY",
            EventDelivery::Outbox,
            |s| match s {
                "outbox" => Some(EventDelivery::Outbox),
                "direct" => Some(EventDelivery::Direct),
                _ => None,
            },
            "outbox or direct",
        )?,
    })
}
