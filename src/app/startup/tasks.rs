//! The background tasks a process runs beside its HTTP server — the expiry
//! sweep, the completion relay, the health sampler — and the OS signals
//! that start a shutdown. Each task takes a child of the process's shutdown
//! token and ends at a safe point once it is cancelled; none is aborted.

use std::{sync::Arc, time::Duration};

use tokio::{task::JoinHandle, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::app::http;
use crate::domain::{billing::BillingService, progress::ProgressService};
use crate::ports::HealthIndicator;

/// How often the dependencies are checked for `dependency_up` and the Redis
/// memory gauges, whether or not anyone calls `/health`.
const HEALTH_SAMPLE_INTERVAL: Duration = Duration::from_secs(15);

/// Runs the expiry sweep every `interval` (its route runs it on demand)
/// until `shutdown` is cancelled. The token is checked between two batches
/// only: a batch's commit and the events that report it are never
/// separated by a shutdown.
pub(super) fn spawn_expiry_sweep(
    billing: Arc<BillingService>,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let stopping = shutdown.clone();
    spawn_every(interval, MissedTickBehavior::Delay, shutdown, move || {
        let (billing, stopping) = (billing.clone(), stopping.clone());
        async move {
            if let Err(error) = billing
                .expire_due_until(&move || stopping.is_cancelled())
                .await
            {
                tracing::error!(error = %error, "expiry sweep failed");
            }
        }
    })
}

/// Publishes the completions the finish line recorded but nobody published
/// (DESIGN §10): every `interval`, until `shutdown` is cancelled; a round
/// under way finishes first (a completion it misses stays recorded for the
/// next process).
pub(super) fn spawn_completion_relay(
    progress: Arc<ProgressService>,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    spawn_every(interval, MissedTickBehavior::Delay, shutdown, move || {
        let progress = progress.clone();
        async move {
            if let Err(error) = progress.relay_completions().await {
                // Redis down: the completions stay recorded for the next round.
                tracing::warn!(error = %error, "completion relay round failed");
            }
        }
    })
}

/// Samples every indicator into `dependency_up` until `shutdown` is
/// cancelled; a sample under way finishes (it only reads).
pub(super) fn spawn_health_sampler(
    indicators: Vec<Arc<dyn HealthIndicator>>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let indicators = Arc::new(indicators);
    spawn_every(
        HEALTH_SAMPLE_INTERVAL,
        MissedTickBehavior::Burst,
        shutdown,
        move || {
            let indicators = indicators.clone();
            async move {
                for indicator in indicators.iter() {
                    let health = indicator.check().await;
                    http::metrics::record_health(indicator.component(), health.healthy);
                }
            }
        },
    )
}

/// Runs `round` at once and then every `period` (late ticks handled as
/// `missed` says) until `shutdown` is cancelled. The token is looked at
/// between rounds only: a round under way always finishes.
fn spawn_every<F, R>(
    period: Duration,
    missed: MissedTickBehavior,
    shutdown: CancellationToken,
    mut round: F,
) -> JoinHandle<()>
where
    F: FnMut() -> R + Send + 'static,
    R: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(missed);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            round().await;
        }
    })
}

/// Cancels `shutdown` on SIGINT or SIGTERM; ends without cancelling when
/// someone else cancels it first (a test, or the server ending by itself).
pub(super) fn cancel_on_signal(shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal() => {
                tracing::info!("stopping: finishing the work in flight, closing connections");
                shutdown.cancel();
            }
            () = shutdown.cancelled() => {}
        }
    })
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
