//! Implementations of the ports, one module per technology. Which one serves
//! which port is decided in `crate::app::wiring` from the configuration.

pub mod amqp;
pub mod clock;
pub mod credentials;
#[cfg(feature = "legacy-fanout")]
pub mod dual_publish;
#[cfg(feature = "legacy-fanout")]
pub mod legacy;
pub mod mail;
pub mod memory;
pub mod message;
pub mod postgres;
pub mod redis;
pub mod store_plans;
pub mod templates;
pub mod topology;
