//! `Application`: builds the use cases on the wired adapters, binds the
//! HTTP server and starts the background tasks; `port()` tells where it
//! listens (tests bind port 0). `run_consume` is the `consume` process.
//! Both stop through one cancellation token (see `Application::shutdown`).

mod consumers;
mod tasks;

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::dev::Server;
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use consumers::Consumers;
pub use tasks::shutdown_signal;

use super::{
    auth::TokenService,
    config::Settings,
    http::{
        self,
        state::{AppState, HealthChecks},
    },
    relay::{OutboxHealth, OutboxRelay, RelayConfig},
    wiring::{Adapters, Resources},
};
use crate::domain::{
    account::AccountService,
    billing::BillingService,
    events::{EventDelivery, EventService},
    progress::ProgressService,
};
use crate::ports::HealthIndicator;

/// What `/ready` waits for in an API process: the broker its events go to
/// and the database its accounts live in. Not Redis: accounts and e-mail
/// work without it, only progress needs it.
const API_READINESS: &[&str] = &["rabbitmq", "database"];
/// What `/ready` waits for in a `consume` process: RabbitMQ, and Redis
/// (without its de-duplication claims a consumer dead-letters rather than
/// risk a second e-mail); not the database it never uses — a pending
/// migration must not hold back a consumer rollout.
const CONSUME_READINESS: &[&str] = &["rabbitmq", "redis"];

/// Past this, shutdown says that a task is still finishing its step (it
/// keeps waiting: cutting a step off could separate a write from its event).
const SLOW_STOP: Duration = Duration::from_secs(10);

pub struct Application {
    port: u16,
    /// Stops gracefully once `shutdown` is cancelled: answers close their
    /// connections from then on (`http::Draining`, a child token) and the
    /// requests in flight finish (bounded by the server's shutdown timeout).
    server: Server,
    resources: Resources,
    /// The process's one shutdown signal; nothing is stopped any other way
    /// (no task is aborted, no other flag or channel is consulted).
    ///
    /// Cancelled once, by whichever comes first: SIGINT/SIGTERM
    /// (`tasks::cancel_on_signal`), the HTTP server ending by itself, or a
    /// holder of `shutdown_token()` (tests). Every task below holds a child
    /// token and, once it is cancelled, finishes the step under way and
    /// ends; `run_until_stopped` waits for each, then closes the broker and
    /// Redis connections.
    shutdown: CancellationToken,
    /// The expiry sweep: checks the token between two batches only, so a
    /// batch's commit and its events are never separated.
    sweeper: JoinHandle<()>,
    /// The outbox relay (and its LISTEN connection) and the completion
    /// relay: each checks the token between two passes; a pass under way
    /// publishes and marks what it claimed.
    relays: Vec<JoinHandle<()>>,
    /// The health sampler: ends between two samples.
    sampler: JoinHandle<()>,
    /// The e-mail consumers (`all`): stop taking messages on cancel, then
    /// finish those in flight (bounded by their drain timeout, after which
    /// they are requeued and their leases released).
    consumers: Consumers,
}

/// The account and billing use cases on the wired adapters.
pub fn identity_services(
    adapters: &Adapters,
    events: Arc<EventService>,
) -> (Arc<AccountService>, Arc<BillingService>) {
    let billing = Arc::new(BillingService::new(
        adapters.identity.clone(),
        events.clone(),
        adapters.clock.clone(),
        adapters.ids.clone(),
    ));
    let accounts = Arc::new(AccountService::new(
        adapters.identity.clone(),
        adapters.hasher.clone(),
        adapters.otps.clone(),
        events,
        billing.clone(),
        adapters.clock.clone(),
        adapters.ids.clone(),
    ));
    (accounts, billing)
}

/// `smap-identity consume`: the e-mail consumers, and the system routes
/// (`/live`, `/ready`, `/health`, `/metrics`) on `HTTP_HOST:HTTP_PORT` so
/// the process can be probed and its e-mail metrics scraped, until
/// SIGINT/SIGTERM cancels the shutdown token; then the consumers finish
/// what is in flight (bounded) before the routes close.
pub async fn run_consume(settings: &Settings) -> anyhow::Result<()> {
    let _ = http::metrics::prometheus();
    // A port in use fails start-up before any message is taken.
    let listener = TcpListener::bind((settings.http_host, settings.http_port))?;
    let port = listener.local_addr()?.port();
    let adapters = Adapters::from_settings(settings).await?;
    let checks = consumer_checks(&adapters.health);
    let server = http::ops_server(listener, checks.clone())?;
    let handle = server.handle();
    let mut serving = tokio::spawn(server);
    let shutdown = CancellationToken::new();
    let consumers = Consumers::start(settings, &adapters, shutdown.child_token());
    let sampler = tasks::spawn_health_sampler(checks.all, shutdown.child_token());
    let signals = tasks::cancel_on_signal(shutdown.clone());
    tracing::info!(host = %settings.http_host, port, "HTTP API listening: system routes only (/live, /ready, /health, /metrics)");
    let served = tokio::select! {
        () = shutdown.cancelled() => None,
        // The routes ending by themselves is a failure: stop taking mail
        // rather than run unprobed.
        ended = &mut serving => Some(ended),
    };
    shutdown.cancel();
    tracing::info!("stopping: finishing the e-mails in flight");
    consumers.stop().await;
    // The routes stay up (probed, scraped) until the mail is done.
    let stop = async {
        handle.stop(true).await;
        match served {
            Some(ended) => ended,
            None => serving.await,
        }
    };
    let served = match tokio::time::timeout(http::SERVER_STOP_BOUND, stop).await {
        Ok(served) => served,
        Err(_) => {
            server_stop_overdue();
            Ok(Ok(()))
        }
    };
    for task in [sampler, signals] {
        let _ = task.await;
    }
    adapters.resources.shutdown().await;
    served??;
    Ok(())
}

/// A consumer process's checks: every indicator but the database's.
fn consumer_checks(indicators: &[Arc<dyn HealthIndicator>]) -> HealthChecks {
    HealthChecks {
        all: indicators
            .iter()
            .filter(|i| i.component() != "database")
            .cloned()
            .collect(),
        ready: CONSUME_READINESS,
    }
}

/// The use cases an API process serves, and the services its tasks run.
struct Services {
    state: AppState,
    events: Arc<EventService>,
    progress: Arc<ProgressService>,
    billing: Arc<BillingService>,
}

impl Services {
    fn new(settings: &Settings, adapters: &Adapters) -> Self {
        let events = Arc::new(
            EventService::new(
                adapters.publisher.clone(),
                adapters.clock.clone(),
                adapters.ids.clone(),
                adapters.plans.clone(),
            )
            .with_delivery(settings.event_delivery),
        );
        let progress = Arc::new(ProgressService::new(
            adapters.progress.clone(),
            events.clone(),
            adapters.clock.clone(),
            adapters.ids.clone(),
        ));
        let (accounts, billing) = identity_services(adapters, events.clone());
        let mut health = adapters.health.clone();
        if settings.event_delivery == EventDelivery::Outbox {
            health.push(Arc::new(OutboxHealth::new(adapters.identity.clone())));
        }
        let state = AppState {
            internal_key: settings.internal_key.clone(),
            tokens: TokenService::new(settings.jwt_secret.expose_secret().as_bytes()),
            secure_cookies: settings.app_env.is_production(),
            clock: adapters.clock.clone(),
            progress: progress.clone(),
            accounts,
            billing: billing.clone(),
            health: HealthChecks {
                all: health,
                ready: API_READINESS,
            },
        };
        Self {
            state,
            events,
            progress,
            billing,
        }
    }
}

/// Starts the relays of an API process, each on a child of `shutdown`: the
/// outbox relay and its LISTEN connection (`EVENT_DELIVERY=outbox`), and
/// the completion relay.
fn spawn_relays(
    settings: &Settings,
    adapters: &Adapters,
    services: &Services,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut relays = Vec::new();
    if settings.event_delivery == EventDelivery::Outbox {
        let relay = OutboxRelay::new(
            adapters.identity.clone(),
            services.events.clone(),
            RelayConfig::default(),
        );
        relays.push(relay.spawn(shutdown.child_token()));
        if let Some((store, url)) = &adapters.outbox_listen {
            relays.push(store.spawn_listener(url.clone(), shutdown.child_token()));
        }
    }
    tracing::info!(
        event_delivery = settings.event_delivery.as_str(),
        "event delivery"
    );
    relays.push(tasks::spawn_completion_relay(
        services.progress.clone(),
        settings.completion_relay_interval,
        shutdown.child_token(),
    ));
    relays
}

/// Waits for a task that was told to stop, saying so if it takes long.
async fn stopped(what: &str, mut task: JoinHandle<()>) {
    if tokio::time::timeout(SLOW_STOP, &mut task).await.is_err() {
        tracing::warn!(task = what, "still finishing its step at shutdown; waiting");
        let _ = task.await;
    }
}

impl Application {
    /// Wires adapters from the settings and binds the server.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The recorder goes in before anything can record: the `metrics`
        // facade drops what is recorded earlier.
        let _ = http::metrics::prometheus();
        let adapters = Adapters::from_settings(&settings).await?;
        Self::build_with(&settings, adapters)
    }

    /// Binds the server on adapters chosen by the caller (tests keep a handle
    /// on the in-memory broker this way).
    pub fn build_with(settings: &Settings, adapters: Adapters) -> anyhow::Result<Self> {
        // Before the health sampler and the consumers start: a first
        // `dependency_up` recorded without a recorder would be lost until
        // the next sample, 15 s later.
        let _ = http::metrics::prometheus();
        tracing::info!(adapters = %adapters.summary(), "adapters wired");
        if settings.uses_dev_secrets() {
            tracing::warn!("JWT_SECRET or INTERNAL_KEY is unset: using development defaults");
        }
        let shutdown = CancellationToken::new();
        let services = Services::new(settings, &adapters);
        let relays = spawn_relays(settings, &adapters, &services, &shutdown);
        let sweeper = tasks::spawn_expiry_sweep(
            services.billing.clone(),
            settings.expiry_sweep_interval,
            shutdown.child_token(),
        );
        let sampler = tasks::spawn_health_sampler(adapters.health.clone(), shutdown.child_token());
        let consumers = if settings.start_consumers {
            Consumers::start(settings, &adapters, shutdown.child_token())
        } else {
            Consumers::None
        };
        let listener = TcpListener::bind((settings.http_host, settings.http_port))?;
        let port = listener.local_addr()?.port();
        let server = http::server(
            listener,
            services.state,
            settings.cors_allowed_origins.clone(),
            http::Draining(shutdown.child_token()),
        )?;
        tracing::info!(host = %settings.http_host, port, "HTTP API listening");
        Ok(Self {
            port,
            server,
            resources: adapters.resources,
            shutdown,
            sweeper,
            relays,
            sampler,
            consumers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process's shutdown token: cancelling it stops the application
    /// as SIGTERM does (tests stop their apps this way).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled (SIGINT/SIGTERM, or a
    /// holder of `shutdown_token()`), then waits for every task to stop at
    /// its safe point and closes the broker and Redis connections (each
    /// bounded in time).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let signals = tasks::cancel_on_signal(self.shutdown.clone());
        let handle = self.server.handle();
        let shutdown = self.shutdown.clone();
        let stopper = tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.stop(true).await;
        });
        let stopping = self.shutdown.clone();
        let result = tokio::select! {
            result = self.server => result,
            () = async {
                stopping.cancelled().await;
                tokio::time::sleep(http::SERVER_STOP_BOUND).await;
            } => {
                server_stop_overdue();
                stopper.abort();
                Ok(())
            }
        };
        // The server ending by itself stops the rest too.
        self.shutdown.cancel();
        stopped("expiry sweep", self.sweeper).await;
        for relay in self.relays {
            // A completion it was publishing stays recorded: another process
            // (or this one, restarted) publishes it.
            stopped("relay", relay).await;
        }
        for task in [self.sampler, signals, stopper] {
            let _ = task.await;
        }
        self.consumers.stop().await;
        self.resources.shutdown().await;
        result
    }
}

/// The HTTP server did not stop within [`http::SERVER_STOP_BOUND`]: the
/// process goes on closing the rest and exits without it.
fn server_stop_overdue() {
    tracing::warn!(
        bound_s = http::SERVER_STOP_BOUND.as_secs(),
        "the HTTP server did not stop in time; going on without it"
    );
}
