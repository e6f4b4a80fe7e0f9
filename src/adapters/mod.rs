//! Implementations of the ports, one folder per technology. Which one serves
//! which port is decided in `crate::app::wiring` from the configuration.

pub mod amqp;
pub mod argon2;
pub mod bus;
#[cfg(feature = "legacy-fanout")]
pub mod legacy;
pub mod mail;
pub mod memory;
pub mod postgres;
pub mod redis;
pub mod sampling;
pub mod system;
