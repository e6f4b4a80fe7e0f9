//! `Application`: builds the use cases on the wired adapters and binds the
//! HTTP server; `port()` tells where it listens (tests bind port 0).

use std::{net::TcpListener, sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ports::HealthIndicator;

use actix_web::dev::{Server, ServerHandle};

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
use crate::adapters::{
    amqp::{ConsumerConfig, EmailConsumers},
    bus::topology::EMAIL_QUEUE,
    mail::templates::EmailTemplates,
    mail::{EmailHandler, MessageFormat},
    memory::spawn_email_consumers,
};
use crate::domain::{
    account::AccountService,
    billing::BillingService,
    events::{EventDelivery, EventService},
    mail_delivery::DeliveryService,
    progress::ProgressService,
};

pub struct Application {
    port: u16,
    server: Server,
    resources: Resources,
    /// The expiry sweep; stops at a batch boundary once `stop` is cancelled.
    sweeper: tokio::task::JoinHandle<()>,
    /// The outbox relay (and its LISTEN connection) and the completion
    /// relay; each stops between passes once `stop` is cancelled.
    relay: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    sampler: JoinHandle<()>,
    draining: http::Draining,
    consumers: Consumers,
}

/// The e-mail consumers running in this process.
pub enum Consumers {
    None,
    Memory(Vec<tokio::task::JoinHandle<()>>),
    Amqp(EmailConsumers),
}

impl Consumers {
    /// Starts the consumers on whichever bus is wired.
    pub fn start(settings: &Settings, adapters: &Adapters) -> Self {
        let templates = match EmailTemplates::new() {
            Ok(t) => Arc::new(t),
            Err(e) => {
                tracing::error!(error = %e, "e-mail templates failed to load; e-mail consumers not started");
                return Consumers::None;
            }
        };
        let send_timeout = settings
            .smtp
            .as_ref()
            .map_or(crate::domain::mail_delivery::SEND_TIMEOUT, |smtp| {
                smtp.timeout
            });
        let delivery = Arc::new(
            DeliveryService::new(
                adapters.mailer.clone(),
                adapters.dedup.clone(),
                adapters.ids.clone(),
            )
            .with_send_timeout(send_timeout),
        );
        let handler = Arc::new(EmailHandler::new(
            templates,
            delivery.clone(),
            adapters.clock.clone(),
        ));
        #[allow(unused_mut)]
        let mut queues = vec![(EMAIL_QUEUE, MessageFormat::Envelope)];
        #[cfg(feature = "legacy-fanout")]
        if settings.consume_legacy_queue {
            queues.push((
                crate::adapters::bus::topology::LEGACY_QUEUE,
                MessageFormat::Legacy,
            ));
        }
        let names: Vec<&str> = queues.iter().map(|(q, _)| *q).collect();
        tracing::info!(queues = ?names, concurrency = settings.email_concurrency, lease_secs = delivery.lease().as_secs(), "e-mail consumers started");
        if let Some(broker) = adapters.memory_broker.clone() {
            return Consumers::Memory(spawn_email_consumers(
                broker,
                handler,
                queues,
                settings.email_concurrency,
                adapters.clock.clone(),
            ));
        }
        match &adapters.resources.amqp {
            Some(broker) => Consumers::Amqp(EmailConsumers::start(
                broker.clone(),
                handler,
                queues,
                ConsumerConfig {
                    prefetch: settings.email_prefetch,
                    concurrency: settings.email_concurrency,
                    drain_timeout: std::time::Duration::from_secs(10),
                },
                adapters.clock.clone(),
            )),
            None => Consumers::None,
        }
    }

    /// Stops taking messages and finishes those in flight (bounded).
    pub async fn stop(self) {
        match self {
            Consumers::None => {}
            Consumers::Memory(tasks) => tasks.iter().for_each(tokio::task::JoinHandle::abort),
            Consumers::Amqp(consumers) => consumers.stop().await,
        }
    }
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

/// Runs the expiry sweep every `interval` (its route runs it on demand)
/// until `stop` is cancelled. A sweep under way finishes its batch — the
/// commit and the events that report it — before the task ends.
fn spawn_expiry_sweep(
    billing: Arc<BillingService>,
    interval: std::time::Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let stopping = stop.clone();
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
/// (DESIGN §10): every `interval`, until `stop` is cancelled; a round under
/// way finishes first.
fn spawn_completion_relay(
    progress: Arc<ProgressService>,
    interval: std::time::Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = progress.relay_completions().await {
                // Redis down: the completions stay recorded for the next round.
                tracing::warn!(error = %error, "completion relay round failed");
            }
        }
    })
}

/// How long shutdown waits for a sweep batch (or relay round) under way.
const SWEEP_STOP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// `smap-identity consume`: the e-mail consumers, and the system routes
/// (`/live`, `/ready`, `/health`, `/metrics`) on `HTTP_HOST:HTTP_PORT` so
/// the process can be probed and its e-mail metrics scraped, until
/// SIGINT/SIGTERM; then the consumers finish what is in flight (bounded)
/// before the routes close.
pub async fn run_consume(settings: &Settings) -> anyhow::Result<()> {
    let _ = http::metrics::prometheus();
    // A port in use fails start-up before any message is taken.
    let listener = TcpListener::bind((settings.http_host, settings.http_port))?;
    let port = listener.local_addr()?.port();
    let adapters = Adapters::from_settings(settings).await?;
    let checks = consumer_checks(&adapters.health);
    let server = http::ops_server(listener, HealthChecks(checks.clone()))?;
    let handle = server.handle();
    let mut serving = tokio::spawn(server);
    let consumers = Consumers::start(settings, &adapters);
    let sampler = spawn_health_sampler(checks);
    tracing::info!(host = %settings.http_host, port, "HTTP API listening: system routes only (/live, /ready, /health, /metrics)");
    let served = tokio::select! {
        () = shutdown_signal() => None,
        // The routes ending by themselves is a failure: stop taking mail
        // rather than run unprobed.
        ended = &mut serving => Some(ended),
    };
    tracing::info!("stopping: finishing the e-mails in flight");
    consumers.stop().await;
    handle.stop(true).await;
    let served = match served {
        Some(ended) => ended,
        None => serving.await,
    };
    sampler.abort();
    adapters.resources.shutdown().await;
    served??;
    Ok(())
}

/// What a consumer process is judged on: RabbitMQ and Redis (without its
/// de-duplication claims a consumer dead-letters rather than risk a second
/// e-mail), not the database it never uses — a pending migration must not
/// hold back a consumer rollout.
fn consumer_checks(indicators: &[Arc<dyn HealthIndicator>]) -> Vec<Arc<dyn HealthIndicator>> {
    indicators
        .iter()
        .filter(|i| i.component() != "database")
        .map(|i| match i.component() {
            "redis" => Arc::new(Required(i.clone())) as Arc<dyn HealthIndicator>,
            _ => i.clone(),
        })
        .collect()
}

/// An indicator that readiness requires, whatever it says for the API.
struct Required(Arc<dyn HealthIndicator>);

#[async_trait::async_trait]
impl HealthIndicator for Required {
    fn component(&self) -> &'static str {
        self.0.component()
    }

    fn required_for_readiness(&self) -> bool {
        true
    }

    async fn check(&self) -> crate::ports::Health {
        self.0.check().await
    }
}

/// How often the dependencies are checked for `dependency_up` and the Redis
/// memory gauges, whether or not anyone calls `/health`.
const HEALTH_SAMPLE_INTERVAL: Duration = Duration::from_secs(15);

fn spawn_health_sampler(indicators: Vec<Arc<dyn HealthIndicator>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HEALTH_SAMPLE_INTERVAL);
        loop {
            ticks.tick().await;
            for indicator in &indicators {
                let health = indicator.check().await;
                http::metrics::record_health(indicator.component(), health.healthy);
            }
        }
    })
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
        let (accounts, billing) = identity_services(&adapters, events.clone());
        let stop = CancellationToken::new();
        let mut health = adapters.health.clone();
        let mut relay = Vec::new();
        if settings.event_delivery == EventDelivery::Outbox {
            relay.push(
                OutboxRelay::new(adapters.identity.clone(), events, RelayConfig::default())
                    .spawn(stop.clone()),
            );
            if let Some((store, url)) = &adapters.outbox_listen {
                relay.push(store.spawn_listener(url.clone(), stop.clone()));
            }
            health.push(Arc::new(OutboxHealth::new(adapters.identity.clone())));
        }
        tracing::info!(
            event_delivery = settings.event_delivery.as_str(),
            "event delivery"
        );
        let state = AppState {
            internal_key: settings.internal_key.clone(),
            tokens: TokenService::new(settings.jwt_secret.expose_secret().as_bytes()),
            secure_cookies: settings.app_env.is_production(),
            clock: adapters.clock.clone(),
            progress: progress.clone(),
            accounts,
            billing: billing.clone(),
            health,
        };
        let sweeper = spawn_expiry_sweep(billing, settings.expiry_sweep_interval, stop.clone());
        relay.push(spawn_completion_relay(
            progress,
            settings.completion_relay_interval,
            stop.clone(),
        ));
        let sampler = spawn_health_sampler(adapters.health.clone());
        let consumers = if settings.start_consumers {
            Consumers::start(settings, &adapters)
        } else {
            Consumers::None
        };
        let listener = TcpListener::bind((settings.http_host, settings.http_port))?;
        let port = listener.local_addr()?.port();
        let draining = http::Draining::default();
        let server = http::server(
            listener,
            state,
            settings.cors_allowed_origins.clone(),
            draining.clone(),
        )?;
        tracing::info!(host = %settings.http_host, port, "HTTP API listening");
        Ok(Self {
            port,
            server,
            resources: adapters.resources,
            sweeper,
            relay,
            stop,
            sampler,
            consumers,
            draining,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (graceful: in-flight requests finish).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the handle) stops the server, then
    /// closes the broker and Redis connections (each bounded in time).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let draining = self.draining.0.clone();
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: finishing requests in flight, closing connections");
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            handle.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        self.stop.cancel();
        let mut sweeper = self.sweeper;
        if tokio::time::timeout(SWEEP_STOP_TIMEOUT, &mut sweeper)
            .await
            .is_err()
        {
            tracing::warn!("expiry sweep still running at shutdown: stopped");
            sweeper.abort();
        }
        for mut task in self.relay {
            if tokio::time::timeout(SWEEP_STOP_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                // A completion it was publishing stays recorded: another
                // process (or this one, restarted) publishes it.
                tracing::warn!("relay still running at shutdown: stopped");
                task.abort();
            }
        }
        self.sampler.abort();
        self.consumers.stop().await;
        self.resources.shutdown().await;
        result
    }
}
