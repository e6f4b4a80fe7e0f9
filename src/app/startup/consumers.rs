//! The e-mail consumers a process runs (`all`, `consume`): on the in-memory
//! broker or on RabbitMQ, whichever is wired, with the delivery service and
//! the templates they share.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::adapters::{
    amqp::{ConsumerConfig, EmailConsumers},
    bus::topology::EMAIL_QUEUE,
    mail::templates::EmailTemplates,
    mail::{EmailHandler, MessageFormat},
    memory::spawn_email_consumers,
};
use crate::app::{config::Settings, wiring::Adapters};
use crate::domain::mail_delivery::DeliveryService;

/// How long a stop waits for the e-mails in flight before cutting them off.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The e-mail consumers running in this process.
pub enum Consumers {
    None,
    /// The in-memory consumers stop taking messages once their token is
    /// cancelled (a message being handled is finished); nothing to wait for.
    Memory(Vec<JoinHandle<()>>),
    /// The RabbitMQ consumers stop taking deliveries once their token is
    /// cancelled; `stop` drains those in flight (bounded).
    Amqp(EmailConsumers),
}

impl Consumers {
    /// Starts the consumers on whichever bus is wired; they stop taking
    /// messages once `shutdown` is cancelled.
    pub fn start(settings: &Settings, adapters: &Adapters, shutdown: CancellationToken) -> Self {
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
        let queues = queues(settings);
        let names: Vec<&str> = queues.iter().map(|(q, _)| *q).collect();
        tracing::info!(queues = ?names, concurrency = settings.email_concurrency, lease_secs = delivery.lease().as_secs(), "e-mail consumers started");
        if let Some(broker) = adapters.memory_broker.clone() {
            return Consumers::Memory(spawn_email_consumers(
                broker,
                handler,
                queues,
                settings.email_concurrency,
                adapters.clock.clone(),
                shutdown,
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
                    drain_timeout: DRAIN_TIMEOUT,
                },
                adapters.clock.clone(),
                shutdown,
            )),
            None => Consumers::None,
        }
    }

    /// Waits until the consumers stopped taking messages and (on RabbitMQ)
    /// finished those in flight, bounded by the drain timeout. The token
    /// handed to `start` says when; this only waits.
    pub async fn stop(self) {
        match self {
            Consumers::None => {}
            // Each loop ends at its next take; the in-memory broker keeps
            // nothing that a wait would save.
            Consumers::Memory(tasks) => drop(tasks),
            Consumers::Amqp(consumers) => consumers.stop().await,
        }
    }
}

/// The queues this process reads, each with the format of its messages.
fn queues(settings: &Settings) -> Vec<(&'static str, MessageFormat)> {
    #[allow(unused_mut)]
    let mut queues = vec![(EMAIL_QUEUE, MessageFormat::Envelope)];
    #[cfg(feature = "legacy-fanout")]
    if settings.consume_legacy_queue {
        queues.push((
            crate::adapters::bus::topology::LEGACY_QUEUE,
            MessageFormat::Legacy,
        ));
    }
    #[cfg(not(feature = "legacy-fanout"))]
    let _ = settings;
    queues
}
