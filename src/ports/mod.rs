//! The traits the domain needs from the outside world. Each has an in-memory
//! adapter that behaves like the real one (see `crate::adapters::memory`).

#![warn(missing_docs)]

mod clock;
mod credentials;
mod dedup;
mod event_publisher;
mod health;
mod identity_store;
mod mailer;
mod plan_catalog;
mod progress_store;
mod store_plan_catalog;
#[cfg(any(test, feature = "test-support"))]
pub mod suites;

pub use clock::{Clock, IdGenerator};
pub use credentials::{HashError, OtpSource, PasswordHasher};
pub use dedup::{Claim, DedupError, DedupStore, Marked};
pub use event_publisher::{EventPublisher, PublishError};
pub use health::{Health, HealthIndicator};
pub use identity_store::{
    HANDOFF_CAP, IdentityStore, OtpSlot, OutboxBacklog, OutboxEntry, OutboxEvent, OutboxLink,
    PasswordLimit, PasswordSlot, ProfileChanges, ResendEvents, ResendSlot, StoreError, SweepMove,
    SweepRule, SweptSubscription, Take, TxHook, UserRef,
};
pub use mailer::{MailError, Mailer, OutgoingEmail};
pub use plan_catalog::{PlanCatalog, PlanCatalogError};
pub use progress_store::{ProgressError, ProgressStore};
pub use store_plan_catalog::StorePlanCatalog;

#[cfg(test)]
pub use clock::{MockClock, MockIdGenerator};
#[cfg(test)]
pub use event_publisher::MockEventPublisher;
#[cfg(test)]
pub use plan_catalog::MockPlanCatalog;
#[cfg(test)]
pub use progress_store::MockProgressStore;
