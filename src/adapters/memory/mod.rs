//! In-process adapters for every port. They behave like the real ones (topic
//! routing, atomic finish line, time to live), so the service runs and is
//! tested with no server at all.

mod broker;
mod event_bus;
mod health;
mod identity;
#[cfg(feature = "legacy-fanout")]
mod legacy_sink;
mod plans;
mod progress;

pub use broker::{BindingPattern, BrokerError, Delivery, ExchangeKind, InMemoryBroker};
pub use event_bus::InMemoryEventBus;
pub use health::InMemoryHealth;
pub use identity::InMemoryIdentityStore;
#[cfg(feature = "legacy-fanout")]
pub use legacy_sink::InMemoryLegacySink;
pub use plans::InMemoryPlanCatalog;
pub use progress::InMemoryProgressStore;
