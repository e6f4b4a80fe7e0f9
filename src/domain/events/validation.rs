//! The rules of DESIGN §2 that field types cannot carry: time, cross-field
//! consistency, size. A failure names the field and nothing is published.

use chrono::{DateTime, Duration, Utc};

use super::{
    EventData, JobCompletedPayload, SubscriptionCancelledPayload, SubscriptionCreatedPayload,
    SubscriptionStatusChangedPayload,
};
use crate::domain::{
    billing::{SubscriptionStatus, TRIAL_DAYS},
    timestamp::Timestamp,
};

/// Why an event may not be published. Field names are those of `data` on
/// the wire; the message is meant for logs and for the caller's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventValidationError {
    /// An optional field the event's status or reason requires is absent.
    #[error("`{field}` is required")]
    Missing {
        /// The absent field.
        field: &'static str,
    },
    /// A field is set where the rules forbid it.
    #[error("`{field}` must not be set: {reason}")]
    NotAllowed {
        /// The field that must be absent.
        field: &'static str,
        /// Why it must be absent.
        reason: &'static str,
    },
    /// A deadline is not after the moment of validation.
    #[error("`{field}` must be in the future")]
    NotInFuture {
        /// The deadline field (`expires_at`).
        field: &'static str,
    },
    /// A trial is not exactly 14 days long, to the millisecond.
    #[error("`trial_end` must be exactly {TRIAL_DAYS} days after `trial_start`")]
    TrialLength,
    /// A period ends at or before its start.
    #[error("`{field}` must be after `{earlier}`")]
    Order {
        /// The end of the period.
        field: &'static str,
        /// The start it must follow.
        earlier: &'static str,
    },
    /// Any other rule of DESIGN §2: a status or counter out of place.
    #[error("`{field}` {rule}")]
    Rule {
        /// The offending field.
        field: &'static str,
        /// The rule, phrased to follow the field name ("must be ...").
        rule: &'static str,
    },
    /// The plan catalogue has no plan with the event's code.
    #[error("`plan_code`: no plan `{plan_code}` exists")]
    UnknownPlan {
        /// The code the event names.
        plan_code: String,
    },
    /// The sealed envelope is over the size limit.
    #[error("the serialized event is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size of the serialized envelope, in bytes.
        size: usize,
        /// The limit, [`super::MAX_EVENT_BYTES`].
        limit: usize,
    },
}

impl EventValidationError {
    /// The offending field of `data` (`None` for the whole-event size rule).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Missing { field }
            | Self::NotAllowed { field, .. }
            | Self::NotInFuture { field }
            | Self::Order { field, .. }
            | Self::Rule { field, .. } => Some(field),
            Self::TrialLength => Some("trial_end"),
            Self::UnknownPlan { .. } => Some("plan_code"),
            Self::TooLarge { .. } => None,
        }
    }
}

type Check = Result<(), EventValidationError>;

impl EventData {
    /// Checks the time and consistency rules at instant `now`; the first
    /// rule broken is the error. The plan catalogue and the size limit are
    /// checked elsewhere ([`super::EventService`], [`super::EventEnvelope::seal`]).
    pub fn validate(&self, now: DateTime<Utc>) -> Check {
        match self {
            Self::EmailVerificationRequested(p) => {
                if p.expires_at.as_datetime() <= now {
                    return Err(EventValidationError::NotInFuture {
                        field: "expires_at",
                    });
                }
                Ok(())
            }
            Self::SubscriptionCreated(p) => validate_created(p),
            Self::SubscriptionCancelled(p) => validate_cancelled(p),
            Self::SubscriptionStatusChanged(p) => validate_status_changed(p),
            Self::JobCompleted(p) => validate_job_completed(p),
            Self::ProjectCreated(_) => Ok(()),
        }
    }
}

fn require(
    value: Option<Timestamp>,
    field: &'static str,
) -> Result<Timestamp, EventValidationError> {
    value.ok_or(EventValidationError::Missing { field })
}

fn period(
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    start_field: &'static str,
    end_field: &'static str,
) -> Result<(Timestamp, Timestamp), EventValidationError> {
    let start = require(start, start_field)?;
    let end = require(end, end_field)?;
    if end <= start {
        return Err(EventValidationError::Order {
            field: end_field,
            earlier: start_field,
        });
    }
    Ok((start, end))
}

fn validate_created(p: &SubscriptionCreatedPayload) -> Check {
    match p.status {
        SubscriptionStatus::Trialing => {
            let (start, end) = period(p.trial_start, p.trial_end, "trial_start", "trial_end")?;
            if end.as_datetime() - start.as_datetime() != Duration::days(TRIAL_DAYS) {
                return Err(EventValidationError::TrialLength);
            }
            Ok(())
        }
        SubscriptionStatus::Active => period(
            p.subscription_start,
            p.subscription_end,
            "subscription_start",
            "subscription_end",
        )
        .map(drop),
        _ => Err(EventValidationError::Rule {
            field: "status",
            rule: "must be `trialing` or `active` for a new subscription",
        }),
    }
}

fn validate_cancelled(p: &SubscriptionCancelledPayload) -> Check {
    if p.new_status != SubscriptionStatus::Cancelled {
        return Err(EventValidationError::Rule {
            field: "new_status",
            rule: "must be `cancelled`",
        });
    }
    if p.previous_status == SubscriptionStatus::Cancelled {
        return Err(EventValidationError::Rule {
            field: "previous_status",
            rule: "must not be `cancelled`: the subscription is already cancelled",
        });
    }
    match (p.cancellation_reason.is_admin_action(), p.admin_user_id) {
        (true, None) => Err(EventValidationError::Missing {
            field: "admin_user_id",
        }),
        (false, Some(_)) => Err(EventValidationError::NotAllowed {
            field: "admin_user_id",
            reason: "only an `admin_action` cancellation names an admin",
        }),
        _ => Ok(()),
    }
}

fn validate_status_changed(p: &SubscriptionStatusChangedPayload) -> Check {
    if p.new_status == p.previous_status {
        return Err(EventValidationError::Rule {
            field: "new_status",
            rule: "must differ from `previous_status`",
        });
    }
    if p.subscription_start.is_some() || p.subscription_end.is_some() {
        period(
            p.subscription_start,
            p.subscription_end,
            "subscription_start",
            "subscription_end",
        )?;
    }
    Ok(())
}

fn validate_job_completed(p: &JobCompletedPayload) -> Check {
    if p.total == 0 {
        return Err(EventValidationError::Rule {
            field: "total",
            rule: "must be greater than 0 for a completed job",
        });
    }
    if p.done < p.total {
        return Err(EventValidationError::Rule {
            field: "done",
            rule: "must be at least `total` for a completed job",
        });
    }
    if p.errors > p.done {
        return Err(EventValidationError::Rule {
            field: "errors",
            rule: "must not exceed `done`",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
