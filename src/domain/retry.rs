//! `RetryPolicy`: the one backoff every retry loop of the service uses —
//! a bounded number of tries, waits growing by a factor up to a cap, and
//! jitter so that processes that failed together do not retry in step.
//! Randomness comes in as a number in `[0, 1)` chosen by the caller (a
//! random one in production, a fixed one in tests): the domain names no
//! random-number crate.

use std::{future::Future, time::Duration};

/// How many times to try an operation and how long to wait between tries.
/// A plain value (`Copy`, `const`-constructible): the named policies of the
/// service are constants, and a test swaps in a faster one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first one included (at least 1; `u32::MAX` for a
    /// loop that never gives up). 0 is read as 1: the operation always runs.
    pub attempts: u32,
    /// Wait before the second try.
    pub initial_backoff: Duration,
    /// Longest wait between two tries, before jitter.
    pub max_backoff: Duration,
    /// Each wait is the previous one times this (2: doubling; 1: constant).
    pub factor: u32,
    /// Each wait is spread uniformly by ± this many percent (0: exact);
    /// values over 100 count as 100, so a wait is never negative.
    pub jitter_percent: u32,
}

impl RetryPolicy {
    /// Publishing an event on a request path: 3 tries, 100 ms then 200 ms, so a
    /// broker hiccup costs a request at most ~0.3 s before it gets a 503.
    pub const PUBLISH: RetryPolicy = RetryPolicy::exponential(3, Duration::from_millis(100));

    /// No retry at all.
    pub const NONE: RetryPolicy = RetryPolicy::exponential(1, Duration::ZERO);

    /// `attempts` tries, waiting `initial_backoff` before the second and
    /// doubling, without cap or jitter.
    pub const fn exponential(attempts: u32, initial_backoff: Duration) -> Self {
        Self {
            attempts,
            initial_backoff,
            max_backoff: Duration::MAX,
            factor: 2,
            jitter_percent: 0,
        }
    }

    /// The same policy with waits capped at `max_backoff`.
    pub const fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// The same policy with waits spread by ± `percent` %.
    pub const fn with_jitter_percent(mut self, percent: u32) -> Self {
        self.jitter_percent = percent;
        self
    }

    /// The wait before try number `attempt` (1-based; the first try waits
    /// 0), before jitter: `initial × factor^(attempt − 2)`, at most the cap.
    pub fn backoff_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        // Past 2^16 every wait worth having is at its cap already.
        let steps = (attempt - 2).min(16);
        self.initial_backoff
            .saturating_mul(self.factor.saturating_pow(steps))
            .min(self.max_backoff)
    }

    /// The wait before try number `attempt` with jitter: `unit` (in
    /// `[0, 1)`, clamped) picks a point in `backoff ± jitter_percent %`;
    /// `0.5` is the exact backoff.
    pub fn jittered_backoff_before(&self, attempt: u32, unit: f64) -> Duration {
        self.jitter(self.backoff_before(attempt), unit)
    }

    /// The longest wait before try number `attempt`, jitter included (for
    /// bounds such as a lease that must outlast every try).
    pub fn longest_backoff_before(&self, attempt: u32) -> Duration {
        self.jitter(self.backoff_before(attempt), 1.0)
    }

    /// `wait` spread by ± `jitter_percent` % at the point `unit` picks:
    /// `unit` is clamped to `[0, 1]` (0 is the shortest wait, 1 the
    /// longest), and a `unit` that is not a finite number gives `wait`
    /// itself. With no jitter, `wait` unchanged.
    pub fn jitter(&self, wait: Duration, unit: f64) -> Duration {
        if self.jitter_percent == 0 {
            return wait;
        }
        let spread = f64::from(self.jitter_percent.min(100)) / 100.0;
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        wait.mul_f64(1.0 - spread + 2.0 * spread * unit)
    }

    /// Runs `op` (given the 1-based try number) until it succeeds, fails with
    /// an error `is_transient` rejects, or the tries are used up; the last
    /// error is returned. Waits without jitter (`run_jittered` takes a
    /// source of randomness).
    pub async fn run<T, E, F, Fut>(&self, op: F, is_transient: impl Fn(&E) -> bool) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_jittered(op, is_transient, || 0.5).await
    }

    /// `run`, with each wait jittered by a fresh `unit()` in `[0, 1)`;
    /// returns what `run` would.
    pub async fn run_jittered<T, E, F, Fut>(
        &self,
        mut op: F,
        is_transient: impl Fn(&E) -> bool,
        mut unit: impl FnMut() -> f64,
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
                    tokio::time::sleep(self.jittered_backoff_before(attempt, unit())).await;
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
        let policy = RetryPolicy::exponential(4, Duration::from_secs(1));
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

    #[test]
    fn backoff_is_capped() {
        let policy = RetryPolicy::exponential(u32::MAX, Duration::from_millis(500))
            .with_max_backoff(Duration::from_secs(30));
        let waits: Vec<u64> = [2, 3, 4, 8, 9, 100, u32::MAX]
            .map(|a| policy.backoff_before(a).as_millis() as u64)
            .to_vec();
        assert_eq!(waits, [500, 1000, 2000, 30_000, 30_000, 30_000, 30_000]);
    }

    #[test]
    fn jitter_spreads_each_wait_by_the_given_percentage() {
        let policy = RetryPolicy::exponential(4, Duration::from_secs(4)).with_jitter_percent(25);
        let at = |unit| policy.jittered_backoff_before(2, unit).as_millis();
        assert_eq!(at(0.0), 3000);
        assert_eq!(at(0.5), 4000);
        assert_eq!(at(1.0), 5000);
        assert_eq!(at(-3.0), 3000, "clamped");
        assert_eq!(at(f64::NAN), 4000, "not a number: the exact wait");
        assert_eq!(policy.longest_backoff_before(2).as_millis(), 5000);
        let exact = RetryPolicy::exponential(4, Duration::from_secs(4));
        assert_eq!(exact.jittered_backoff_before(2, 0.0).as_millis(), 4000);
    }

    #[tokio::test(start_paused = true)]
    async fn run_jittered_draws_one_unit_per_wait() {
        let policy = RetryPolicy::PUBLISH.with_jitter_percent(50);
        let mut units = [0.0, 1.0].into_iter();
        let started = tokio::time::Instant::now();
        let result: Result<(), Failure> = policy
            .run_jittered(
                |_| async { Err(Failure::Transient) },
                |e| *e == Failure::Transient,
                || units.next().unwrap(),
            )
            .await;
        assert_eq!(result, Err(Failure::Transient));
        // 100 ms − 50 % then 200 ms + 50 %.
        assert_eq!(started.elapsed(), Duration::from_millis(50 + 300));
    }
}
