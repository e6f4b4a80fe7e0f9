//! Time and randomness, injected so that use cases and tests are deterministic.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The current instant.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh identifiers: every call returns a UUID v4 never returned before.
#[cfg_attr(test, mockall::automock)]
pub trait IdGenerator: Send + Sync {
    fn new_uuid(&self) -> Uuid;
}
