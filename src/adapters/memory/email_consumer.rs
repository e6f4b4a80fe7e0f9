//! The e-mail consumers on the in-memory broker: the same handler as on
//! RabbitMQ, reading `smtp_send_email_v2` (and the legacy queue), at most
//! `concurrency` messages at a time, dead letters to `email.errors`.

use std::sync::Arc;

use tokio::{sync::Semaphore, task::JoinHandle};

use super::{Delivery, InMemoryBroker};
use crate::{
    adapters::{
        mail::{EmailHandler, Handled, MessageFormat, dead_letter_headers},
        topology::EMAIL_ERRORS_QUEUE,
    },
    ports::Clock,
};

pub fn spawn_email_consumers(
    broker: Arc<InMemoryBroker>,
    handler: Arc<EmailHandler>,
    queues: Vec<(&'static str, MessageFormat)>,
    concurrency: usize,
    clock: Arc<dyn Clock>,
) -> Vec<JoinHandle<()>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    queues
        .into_iter()
        .map(|(queue, format)| {
            let broker = broker.clone();
            let handler = handler.clone();
            let permits = permits.clone();
            let clock = clock.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let Ok(delivery) = broker.take(queue).await else {
                        return;
                    };
                    let (broker, handler, clock) = (broker.clone(), handler.clone(), clock.clone());
                    tokio::spawn(async move {
                        handle(&broker, &handler, format, delivery, clock.as_ref()).await;
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
    format: MessageFormat,
    delivery: Delivery,
    clock: &dyn Clock,
) {
    let message_id = Some(delivery.properties.message_id.as_str()).filter(|id| !id.is_empty());
    if let Handled::DeadLetter {
        reason, attempts, ..
    } = handler.handle(format, &delivery.body, message_id).await
    {
        let mut dead = delivery.clone();
        dead.properties.headers.extend(dead_letter_headers(
            &delivery.exchange,
            &delivery.routing_key,
            message_id,
            &reason,
            attempts,
            clock.now(),
        ));
        if let Err(e) = broker.enqueue(EMAIL_ERRORS_QUEUE, dead) {
            tracing::error!(error = %e, "dead letter could not be queued");
        }
    }
}
