//! Time and randomness, injected so that use cases and tests are deterministic.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The current instant, injected so that the use cases and the stores
/// they call agree on "now", and a test can stop or move it.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC. The system clock truncates it to microseconds (what
    /// PostgreSQL stores, so a value read back equals the value written).
    /// Not monotonic: the system clock may step, a test clock is set by hand.
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh identifiers for new users, sessions, plans and subscriptions.
#[cfg_attr(test, mockall::automock)]
pub trait IdGenerator: Send + Sync {
    /// A UUID v4 never returned before by this generator (random from the
    /// system's CSPRNG, or a counter in tests); never fails.
    fn new_uuid(&self) -> Uuid;
}
