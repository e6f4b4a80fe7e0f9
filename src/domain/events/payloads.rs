//! Typed `data` of every event (DESIGN §2). Field types enforce what they can
//! (UUIDs, e-mail syntax, six-digit OTP, locale, status); the cross-field and
//! time rules live in `validation.rs`. Subscription payloads carry ids only:
//! there is no field that could hold an e-mail address or a name.
//!
//! The doc comments of the payload types and their fields are also the
//! descriptions of the published JSON Schemas (`docs/schemas/`): keep them
//! free of Rust links.

mod account;
mod billing;
mod progress;
mod reasons;

pub use account::EmailVerificationPayload;
pub use billing::{
    SubscriptionCancelledPayload, SubscriptionCreatedPayload, SubscriptionStatusChangedPayload,
};
pub use progress::{JobCompletedPayload, ProjectCreatedPayload};
pub use reasons::{
    CancellationReason, CancellationReasonError, TransitionReason, TransitionReasonError,
};
use serde::Serialize;

use super::{EnvelopeParseError, RoutingKey, keys};
use crate::domain::billing::PlanCode;

/// The data of one event; the variant decides the routing key.
///
/// Serializes as the bare payload object (no tag): the routing key beside it
/// in the envelope says which payload it is, and [`EventData::from_json`]
/// reads it back that way.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// `email.verification.requested`.
    EmailVerificationRequested(EmailVerificationPayload),
    /// `subscription.created`.
    SubscriptionCreated(SubscriptionCreatedPayload),
    /// `subscription.cancelled`.
    SubscriptionCancelled(SubscriptionCancelledPayload),
    /// `subscription.status_changed`.
    SubscriptionStatusChanged(SubscriptionStatusChangedPayload),
    /// `job.completed`.
    JobCompleted(JobCompletedPayload),
    /// `project.created` (reserved: nothing publishes it yet).
    ProjectCreated(ProjectCreatedPayload),
}

impl EventData {
    /// The routing key of this kind of event: one of [`keys::ALL`], fixed
    /// by the variant.
    pub fn routing_key(&self) -> RoutingKey {
        RoutingKey::known(match self {
            Self::EmailVerificationRequested(_) => keys::EMAIL_VERIFICATION_REQUESTED,
            Self::SubscriptionCreated(_) => keys::SUBSCRIPTION_CREATED,
            Self::SubscriptionCancelled(_) => keys::SUBSCRIPTION_CANCELLED,
            Self::SubscriptionStatusChanged(_) => keys::SUBSCRIPTION_STATUS_CHANGED,
            Self::JobCompleted(_) => keys::JOB_COMPLETED,
            Self::ProjectCreated(_) => keys::PROJECT_CREATED,
        })
    }

    /// Subscription events carry their subscription id (DESIGN §2); the
    /// others carry none.
    pub fn idempotency_key(&self) -> Option<String> {
        match self {
            Self::SubscriptionCreated(p) => Some(p.subscription_id.to_string()),
            Self::SubscriptionCancelled(p) => Some(p.subscription_id.to_string()),
            Self::SubscriptionStatusChanged(p) => Some(p.subscription_id.to_string()),
            _ => None,
        }
    }

    /// The plan the event names, which must exist when it is published;
    /// `None` for the events that name no plan (all but the subscription
    /// events).
    pub fn plan_code(&self) -> Option<&PlanCode> {
        match self {
            Self::SubscriptionCreated(p) => Some(&p.plan_code),
            Self::SubscriptionCancelled(p) => Some(&p.plan_code),
            Self::SubscriptionStatusChanged(p) => Some(&p.plan_code),
            _ => None,
        }
    }

    /// Reads `data` as the payload type of `routing_key`.
    ///
    /// Fails with [`EnvelopeParseError::UnknownRoutingKey`] for a key not in
    /// [`keys::ALL`], and with [`EnvelopeParseError::Malformed`] naming the
    /// field (`payload.data.<path>`) that is missing or breaks its type's
    /// rule. Only the field rules are checked here, not the time and
    /// cross-field ones of [`EventData::validate`]; unknown fields are
    /// ignored.
    pub fn from_json(
        routing_key: &RoutingKey,
        data: serde_json::Value,
    ) -> Result<Self, EnvelopeParseError> {
        fn typed<T: serde::de::DeserializeOwned>(
            data: serde_json::Value,
        ) -> Result<T, EnvelopeParseError> {
            serde_path_to_error::deserialize(data).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "payload.data".to_owned()
                } else {
                    format!("payload.data.{path}")
                };
                EnvelopeParseError::Malformed {
                    field,
                    message: e.inner().to_string(),
                }
            })
        }
        Ok(match routing_key.as_str() {
            keys::EMAIL_VERIFICATION_REQUESTED => Self::EmailVerificationRequested(typed(data)?),
            keys::SUBSCRIPTION_CREATED => Self::SubscriptionCreated(typed(data)?),
            keys::SUBSCRIPTION_CANCELLED => Self::SubscriptionCancelled(typed(data)?),
            keys::SUBSCRIPTION_STATUS_CHANGED => Self::SubscriptionStatusChanged(typed(data)?),
            keys::JOB_COMPLETED => Self::JobCompleted(typed(data)?),
            keys::PROJECT_CREATED => Self::ProjectCreated(typed(data)?),
            other => return Err(EnvelopeParseError::UnknownRoutingKey(other.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests;
