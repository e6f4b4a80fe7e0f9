//! Behavioural suites every adapter of a port must pass: the unit tests run
//! them on the in-memory adapters, the integration tests on the real servers
//! (Redis, PostgreSQL), so "behaves like the real one" is checked, not
//! assumed. A suite panics test-style on the first broken promise.
//!
//! Compiled only for tests and with the `test-support` feature, never into
//! the release build.

pub mod dedup_store;
pub mod identity_store;
pub mod progress_store;
