//! The SMAP event standard: routing keys, the envelope every event travels in,
//! the typed payloads, their validation, and the service that seals and
//! publishes them.

mod envelope;
mod payloads;
mod routing_key;
pub mod schemas;
mod service;
mod validation;

pub use envelope::{
    EnvelopeParseError, EventEnvelope, EventId, EventIdError, MAX_EVENT_BYTES, SERVICE_NAME,
    SealedEvent,
};
pub use payloads::{
    CancellationReason, CancellationReasonError, EmailVerificationPayload, EventData,
    JobCompletedPayload, ProjectCreatedPayload, SubscriptionCancelledPayload,
    SubscriptionCreatedPayload, SubscriptionStatusChangedPayload, TransitionReason,
    TransitionReasonError,
};
pub use routing_key::{RoutingKey, RoutingKeyError, keys};
pub use service::{EventDelivery, EventService};
pub use validation::EventValidationError;
