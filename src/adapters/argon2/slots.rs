//! `HashSlots`: the bound on concurrent hashes (`HashBound`), so a login
//! storm is shed with `Busy` instead of queueing without limit.

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use crate::ports::HashError;

/// How many hashes may run at once and how long a caller waits for a slot
/// (`PASSWORD_HASH_CONCURRENCY`, `PASSWORD_HASH_MAX_WAIT_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashBound {
    pub concurrency: usize,
    pub max_wait: Duration,
}

impl HashBound {
    /// Long enough to absorb a burst of ~40 hashes per core (45 ms each),
    /// short enough that a shed request learns it within 2 s — far below
    /// the usual 10-30 s client and load-balancer timeouts.
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(2_000);

    /// One hash per core: Argon2 is CPU-bound, so more at once only adds
    /// memory and latency, not throughput. `available_parallelism` follows
    /// the container's CPU quota.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    }
}

impl Default for HashBound {
    fn default() -> Self {
        Self {
            concurrency: Self::default_concurrency(),
            max_wait: Self::DEFAULT_MAX_WAIT,
        }
    }
}

/// Slots for CPU-heavy work: at most `concurrency` closures run at once,
/// each on the blocking pool; callers wait in arrival order (tokio's
/// semaphore is fair) for at most `max_wait`.
#[derive(Clone)]
pub struct HashSlots {
    semaphore: Arc<Semaphore>,
    bound: HashBound,
}

impl HashSlots {
    pub fn new(bound: HashBound) -> Self {
        let permits = bound.concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(permits)),
            bound: HashBound {
                concurrency: permits,
                ..bound
            },
        }
    }

    pub fn bound(&self) -> HashBound {
        self.bound
    }

    /// Runs `work` on the blocking pool once a slot is free, or answers
    /// `Busy` when none came free within `max_wait`.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let acquire = self.semaphore.clone().acquire_owned();
        let permit = match tokio::time::timeout(self.bound.max_wait, acquire).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; kept typed rather than a panic.
            Ok(Err(closed)) => return Err(HashError::Failed(closed.into())),
            Err(_elapsed) => {
                return Err(HashError::Busy {
                    retry_after_secs: self.retry_after_secs(),
                });
            }
        };
        tokio::task::spawn_blocking(move || {
            // The slot moves into the blocking task: it is freed when the
            // hash ends, not when the caller stops waiting. A client that
            // hangs up mid-hash must not let another hash start meanwhile.
            let _slot = permit;
            work()
        })
        .await
        .map_err(|e| HashError::Failed(e.into()))
    }

    /// A queue that kept a caller waiting `max_wait` takes about as long
    /// to drain; whole seconds (the header's unit), at least 1.
    pub(super) fn retry_after_secs(&self) -> u64 {
        self.bound.max_wait.as_secs_f64().ceil().max(1.0) as u64
    }
}
