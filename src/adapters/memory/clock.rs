//! Controllable clock and id source for tests and benchmarks: time moves
//! only when told, ids count 1, 2, 3, ...

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::ports::{Clock, IdGenerator};

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Predictable UUID v4 values (a counter in the random bits): 1, 2, 3, ...
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGenerator for SequentialIds {
    fn new_uuid(&self) -> Uuid {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_are_distinct_v4_uuids() {
        let ids = SequentialIds::default();
        let a = ids.new_uuid();
        let b = ids.new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(b.get_version_num(), 4);
    }

    #[test]
    fn the_manual_clock_moves_only_when_told() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(5));
        assert_eq!(clock.now(), start + Duration::seconds(5));
    }
}
