//! Wall-clock time and random ids from the operating system.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::ports::{Clock, IdGenerator};

/// Wall-clock time, in microseconds: what PostgreSQL stores, so a value
/// read back equals the value written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// Random UUID v4 from the operating system's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn new_uuid(&self) -> Uuid {
        Uuid::new_v4()
    }
}
