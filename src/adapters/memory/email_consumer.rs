//! The e-mail consumers on the in-memory broker: the same handler as on
//! RabbitMQ, reading `smtp_send_email_v2` (and the legacy queue), at most
//! `concurrency` messages at a time, dead letters to `email.errors` (or the
//! original back to its queue when that fails), and a message whose event
//! another delivery holds the lease of handled again once it ends.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Delivery, InMemoryBroker};
use crate::adapters::sampling::continue_trace;
use crate::{
    adapters::{
        bus::message::trace_context,
        bus::topology::EMAIL_ERRORS_QUEUE,
        mail::{DeadLetter, EmailHandler, Handled, MessageFormat, busy_wait},
    },
    ports::Clock,
};

pub fn spawn_email_consumers(
    broker: Arc<InMemoryBroker>,
    handler: Arc<EmailHandler>,
    queues: Vec<(&'static str, MessageFormat)>,
    concurrency: usize,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    queues
        .into_iter()
        .map(|(queue, format)| {
            let broker = broker.clone();
            let handler = handler.clone();
            let permits = permits.clone();
            let (clock, stop) = (clock.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let taken = tokio::select! {
                        biased;
                        () = stop.cancelled() => return,
                        taken = broker.take(queue) => taken,
                    };
                    let Ok(delivery) = taken else {
                        return;
                    };
                    let (broker, handler, clock) = (broker.clone(), handler.clone(), clock.clone());
                    tokio::spawn(async move {
                        handle(&broker, &handler, queue, format, delivery, clock.as_ref()).await;
                        drop(permit);
                    });
                }
            })
        })
        .collect()
}

async fn handle(
    broker: &InMemoryBroker,
    handler: &EmailHandler,
    queue: &'static str,
    format: MessageFormat,
    delivery: Delivery,
    clock: &dyn Clock,
) {
    let message_id = Some(delivery.properties.message_id.as_str()).filter(|id| !id.is_empty());
    // Continue the producer's trace.
    let span = continue_trace(trace_context(&delivery.properties.headers), || {
        tracing::info_span!(
            "consume",
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.destination.name = queue,
            messaging.message.id = message_id.unwrap_or_default(),
        )
    });
    let outcome = loop {
        let outcome = handler
            .handle(format, &delivery.body, message_id)
            .instrument(span.clone())
            .await;
        // Another delivery holds the event's lease: ask again (as on RabbitMQ).
        let Handled::Busy { retry_after, .. } = outcome else {
            break outcome;
        };
        tokio::time::sleep(busy_wait(retry_after)).await;
    };
    let Handled::DeadLetter {
        event_id,
        reason,
        attempts,
    } = outcome
    else {
        return;
    };
    let mut dead = delivery.clone();
    dead.properties = DeadLetter {
        original_exchange: &delivery.exchange,
        original_routing_key: &delivery.routing_key,
        event_id: event_id.as_deref(),
        reason: &reason,
        attempts,
        failed_at: clock.now(),
    }
    .properties(&delivery.properties);
    match broker.enqueue(EMAIL_ERRORS_QUEUE, dead) {
        Ok(()) => metrics::counter!("email_dead_letters_total", "queue" => queue).increment(1),
        Err(e) => {
            // Never dropped: the original goes back to its queue, as an
            // unacked message does on RabbitMQ.
            tracing::error!(error = %e, "dead letter could not be queued; requeueing the message");
            metrics::counter!("email_consumer_errors_total", "queue" => queue, "kind" => "dead_letter_unpublished").increment(1);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = broker.enqueue(queue, delivery);
        }
    }
}
