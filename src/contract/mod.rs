//! Behavioural suites that every adapter of a port must pass. The unit tests
//! run them on the in-memory adapters, the integration tests on the real
//! servers, so "behaves like the real one" is checked, not assumed.
//! A suite panics (test-style) on the first broken promise.

pub mod progress_store;
