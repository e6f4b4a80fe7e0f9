//! In-process adapters for every port. They behave like the real ones (topic
//! routing, atomic finish line, time to live), so the service runs and is
//! tested with no server at all.

mod broker;
mod clock;
mod email_consumer;
mod event_bus;
mod health;
mod identity;
#[cfg(feature = "legacy-fanout")]
mod legacy_sink;
mod mail;
mod plans;
mod progress;

pub use broker::{BindingPattern, BrokerError, Delivery, ExchangeKind, InMemoryBroker};
pub use clock::{ManualClock, SequentialIds};
pub use email_consumer::spawn_email_consumers;
pub use event_bus::InMemoryEventBus;
pub use health::InMemoryHealth;
pub use identity::InMemoryIdentityStore;
#[cfg(feature = "legacy-fanout")]
pub use legacy_sink::InMemoryLegacySink;
pub use mail::{InMemoryDedup, InMemoryMailer};
pub use plans::InMemoryPlanCatalog;
pub use progress::InMemoryProgressStore;
