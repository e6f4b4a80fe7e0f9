//! Contracts: behavioural suites that every adapter of a port must pass
//! (the unit tests run them on the in-memory adapters, the integration
//! tests on the real servers, so "behaves like the real one" is checked,
//! not assumed; a suite panics test-style on the first broken promise), and
//! the JSON Schemas of the events other services consume.

pub mod dedup_store;
pub mod identity_store;
pub mod progress_store;
pub mod schemas;
