//! `RetryPolicy`: a bounded number of tries with exponential backoff, applied
//! only to errors the caller classifies as transient.

use std::{future::Future, time::Duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first one included (at least 1).
    pub attempts: u32,
    /// Wait before the second try; doubled before each further one.
    pub initial_backoff: Duration,
}

impl RetryPolicy {
    /// Publishing an event on a request path: 3 tries, 100 ms then 200 ms, so a
    /// broker hiccup costs a request at most ~0.3 s before it gets a 503.
    pub const PUBLISH: RetryPolicy = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(100),
    };

    /// No retry at all.
    pub const NONE: RetryPolicy = RetryPolicy {
        attempts: 1,
        initial_backoff: Duration::ZERO,
    };

    /// The wait before try number `attempt` (1-based; the first try waits 0).
    pub fn backoff_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        self.initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt - 2))
    }

    /// Runs `op` (given the 1-based try number) until it succeeds, fails with
    /// an error `is_transient` rejects, or the tries are used up; the last
    /// error is returned.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut op: F,
        is_transient: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) if attempt < attempts && is_transient(&error) => {
                    attempt += 1;
                    tokio::time::sleep(self.backoff_before(attempt)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, PartialEq)]
    enum Failure {
        Transient,
        Permanent,
    }

    #[test]
    fn backoff_doubles() {
        let policy = RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_secs(1),
        };
        let waits: Vec<u64> = (1..=4)
            .map(|a| policy.backoff_before(a).as_secs())
            .collect();
        assert_eq!(waits, [0, 1, 2, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_the_tries_run_out() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: Result<(), Failure> = RetryPolicy::PUBLISH
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(Failure::Transient) }
                },
                |e| *e == Failure::Transient,
            )
            .await;
        assert_eq!(result, Err(Failure::Transient));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), Failure> = RetryPolicy::PUBLISH
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(Failure::Permanent) }
                },
                |e| *e == Failure::Transient,
            )
            .await;
        assert_eq!(result, Err(Failure::Permanent));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_success_is_returned() {
        let result = RetryPolicy::PUBLISH
            .run(
                |attempt| async move {
                    if attempt < 3 {
                        Err(Failure::Transient)
                    } else {
                        Ok(attempt)
                    }
                },
                |e| *e == Failure::Transient,
            )
            .await;
        assert_eq!(result, Ok(3));
    }
}
