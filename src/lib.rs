//! smap-identity: the SMAP Identity Service.
//!
//! The crate is laid out as a hexagon (see `docs/architecture.md`):
//! - [`domain`]: pure types and use cases, no I/O and no framework;
//! - [`ports`]: the traits the domain needs from the outside world (and,
//!   for tests, the behavioural suites every adapter of a port passes);
//! - [`adapters`]: one module per technology implementing those ports;
//! - [`app`]: configuration, wiring, the HTTP API and the command line.

#![warn(clippy::too_many_lines)]

pub mod adapters;
pub mod app;
pub mod domain;
pub mod ports;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
