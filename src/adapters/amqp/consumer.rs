//! The e-mail consumers on RabbitMQ: one channel per queue with manual acks
//! (sent in runs, module `ack_window`) and a prefetch, at most
//! `concurrency` messages in flight overall, dead letters published to
//! `email.errors` (mandatory and confirmed: a dead
//! letter the broker cannot route leaves the original requeued, never
//! acked) before the original is acked, a message whose event another
//! delivery holds the lease of kept and handled again once it ends, and a
//! graceful stop that finishes what is in flight or, after the drain
//! timeout, cuts it off, requeues it and releases its leases.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use lapin::{
    Channel, Consumer,
    message::Delivery,
    options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio::{sync::Semaphore, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{AmqpBroker, ack_window::AckWindow, received::properties_of};
use crate::{
    adapters::{
        bus::message::trace_context,
        bus::topology::EMAIL_ERRORS_QUEUE,
        mail::{DeadLetter, EmailHandler, Handled, MessageFormat, busy_wait},
        sampling::continue_trace,
    },
    ports::Clock,
};

/// Pause before requeueing a message whose dead letter failed, so a broker
/// that keeps refusing it (`email.errors` deleted) sees it once a second,
/// not in a tight loop.
const DEAD_LETTER_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long a stop waits for cut-off deliveries to requeue their messages.
const ABANDON_WAIT: Duration = Duration::from_secs(2);
/// How long a stop waits to hand back deliveries prefetched but not started.
const PREFETCHED_RETURN_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub prefetch: u16,
    pub concurrency: usize,
    /// How long a stop waits for the messages in flight before cutting them
    /// off (requeued, their leases released).
    pub drain_timeout: Duration,
}

/// Running consumers; `stop` ends them gracefully.
pub struct EmailConsumers {
    /// Stop taking deliveries; messages waiting on a lease go back.
    stop: CancellationToken,
    /// Cut off the deliveries still in flight after the drain timeout.
    abandon: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    permits: Arc<Semaphore>,
    handler: Arc<EmailHandler>,
    concurrency: usize,
    drain_timeout: Duration,
}

impl EmailConsumers {
    pub fn start(
        broker: AmqpBroker,
        handler: Arc<EmailHandler>,
        queues: Vec<(&'static str, MessageFormat)>,
        config: ConsumerConfig,
        clock: Arc<dyn Clock>,
        stop: CancellationToken,
    ) -> Self {
        let abandon = CancellationToken::new();
        let concurrency = config.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let tasks = queues
            .into_iter()
            .map(|(queue, format)| {
                let worker = Worker {
                    broker: broker.clone(),
                    handler: handler.clone(),
                    queue,
                    format,
                    prefetch: config.prefetch,
                    permits: permits.clone(),
                    clock: clock.clone(),
                    stop: stop.clone(),
                    abandon: abandon.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        Self {
            stop,
            abandon,
            tasks,
            permits,
            handler,
            concurrency,
            drain_timeout: config.drain_timeout,
        }
    }

    /// Stops taking deliveries, then waits (bounded) for those in flight;
    /// what is still in flight then is cut off: its message is requeued and
    /// its lease released, so the next consumer sends it at once instead of
    /// waiting for the lease to end. A delivery cut off after the mail
    /// server accepted the message but before it was marked sent is sent
    /// again (at-least-once, DESIGN §10).
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        if tokio::time::timeout(self.drain_timeout, self.permits.acquire_many(all))
            .await
            .is_ok()
        {
            tracing::info!("e-mail consumers stopped; nothing in flight");
            return;
        }
        self.abandon.cancel();
        let requeued = tokio::time::timeout(ABANDON_WAIT, self.permits.acquire_many(all))
            .await
            .is_ok();
        let released = self.handler.release_abandoned().await;
        tracing::warn!(
            released,
            requeued,
            drain_timeout_ms = self.drain_timeout.as_millis(),
            "e-mail consumers stopped with deliveries in flight: cut off and requeued, their leases released"
        );
    }
}

/// Stops taking deliveries; those in flight still ack on this channel (the
/// ack window keeps it open until they are settled), and those prefetched
/// but never started go back to the queue now, not when the channel closes.
async fn stop_consuming(
    channel: &Channel,
    tag: &str,
    mut deliveries: Consumer,
    acks: &Arc<AckWindow>,
) {
    let _ = channel
        .basic_cancel(tag.into(), BasicCancelOptions::default())
        .await;
    let prefetched = async {
        while let Some(Ok(delivery)) = deliveries.next().await {
            let _unsettled = acks.delivered(delivery.delivery_tag);
            acks.requeue(delivery.delivery_tag).await;
        }
    };
    // The stream ends after the cancel; the bound is for a broker gone
    // silent (its channel's end requeues them then).
    let _ = tokio::time::timeout(PREFETCHED_RETURN_WAIT, prefetched).await;
}

struct Worker {
    broker: AmqpBroker,
    handler: Arc<EmailHandler>,
    queue: &'static str,
    format: MessageFormat,
    prefetch: u16,
    permits: Arc<Semaphore>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
    abandon: CancellationToken,
}

impl Worker {
    /// Consumes until stopped, re-subscribing after a lost connection.
    async fn run(self) {
        let worker = Arc::new(self);
        while !worker.stop.is_cancelled() {
            if let Err(e) = worker.clone().consume().await {
                tracing::warn!(queue = worker.queue, error = %e, "e-mail consumer interrupted; resubscribing");
                metrics::counter!("email_consumer_errors_total", "queue" => worker.queue, "kind" => "subscription_lost").increment(1);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = worker.stop.cancelled() => {}
                }
            }
        }
    }

    async fn consume(self: Arc<Self>) -> anyhow::Result<()> {
        let channel = self.broker.admin_channel().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!(
            "smap-identity-{}-{}",
            self.queue,
            uuid::Uuid::new_v4().simple()
        );
        let mut deliveries = channel
            .basic_consume(
                self.queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(
            queue = self.queue,
            prefetch = self.prefetch,
            "consuming e-mail messages"
        );
        let acks = AckWindow::start(channel.clone(), self.prefetch, self.queue);
        loop {
            let permit = tokio::select! {
                permit = self.permits.clone().acquire_owned() => permit?,
                () = self.stop.cancelled() => break,
            };
            let next = tokio::select! {
                next = deliveries.next() => next,
                () = self.stop.cancelled() => break,
            };
            match next {
                Some(Ok(delivery)) => {
                    let worker = self.clone();
                    let unsettled = acks.delivered(delivery.delivery_tag);
                    let acks = acks.clone();
                    tokio::spawn(async move {
                        // Requeues the message if this task ends without
                        // settling it (a panic).
                        let _unsettled = unsettled;
                        tokio::select! {
                            () = worker.handle(&delivery, &acks) => {}
                            () = worker.abandon.cancelled() => {
                                // Cut off by the shutdown (the SMTP
                                // conversation is dropped with it): back to
                                // the queue; `stop` releases its lease.
                                acks.requeue(delivery.delivery_tag).await;
                            }
                        }
                        drop(permit);
                    });
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(anyhow::anyhow!("the broker ended the subscription")),
            }
        }
        stop_consuming(&channel, &tag, deliveries, &acks).await;
        Ok(())
    }

    async fn handle(&self, delivery: &Delivery, acks: &AckWindow) {
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string());
        let event_id = message_id.as_deref().unwrap_or("-");
        let span = continue_trace(trace_context(&properties_of(delivery).headers), || {
            tracing::info_span!(
                "consume",
                otel.kind = "consumer",
                messaging.system = "rabbitmq",
                messaging.destination.name = self.queue,
                messaging.message.id = message_id.as_deref().unwrap_or_default(),
            )
        });
        let Some(outcome) = self
            .handle_when_free(delivery, acks, message_id.as_deref(), &span)
            .await
        else {
            return;
        };
        if let Handled::DeadLetter {
            event_id: handled_id,
            reason,
            attempts,
        } = &outcome
            && let Err(e) = self
                .dead_letter(delivery, handled_id.as_deref(), reason, *attempts)
                .await
        {
            // Not acked: the broker redelivers it rather than lose it.
            tracing::error!(event_id, error = %format!("{e:#}"), "dead letter not published; requeueing the message");
            metrics::counter!("email_consumer_errors_total", "queue" => self.queue, "kind" => "dead_letter_unpublished").increment(1);
            tokio::select! {
                () = tokio::time::sleep(DEAD_LETTER_RETRY_PAUSE) => {}
                () = self.stop.cancelled() => {}
            }
            acks.requeue(delivery.delivery_tag).await;
            return;
        }
        // Acked with the run it ends, or at once when it is the last one
        // in flight (module ack_window).
        acks.finished(delivery.delivery_tag).await;
    }

    /// Runs the handler until the message is handled. Another delivery
    /// holding the event's lease is not a duplicate (that one may have died
    /// mid-send): ask again until it is sent or its lease is released or
    /// ends. `None` when the stop came first and the message was requeued.
    async fn handle_when_free(
        &self,
        delivery: &Delivery,
        acks: &AckWindow,
        message_id: Option<&str>,
        span: &tracing::Span,
    ) -> Option<Handled> {
        let event_id = message_id.unwrap_or("-");
        let mut waiting = false;
        loop {
            let outcome = self
                .handler
                .handle(self.format, &delivery.data, message_id)
                .instrument(span.clone())
                .await;
            let Handled::Busy { retry_after, .. } = outcome else {
                return Some(outcome);
            };
            if !waiting {
                tracing::info!(
                    event_id,
                    lease_left_ms = retry_after.as_millis(),
                    "another delivery of this event holds its lease; waiting for it"
                );
                waiting = true;
            }
            tokio::select! {
                () = tokio::time::sleep(busy_wait(retry_after)) => {}
                () = self.stop.cancelled() => {
                    // It holds no lease: another consumer can take it.
                    acks.requeue(delivery.delivery_tag).await;
                    return None;
                }
            }
        }
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        event_id: Option<&str>,
        reason: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        let properties = DeadLetter {
            original_exchange: delivery.exchange.as_str(),
            original_routing_key: delivery.routing_key.as_str(),
            event_id,
            reason,
            attempts,
            failed_at: self.clock.now(),
        }
        .properties(&properties_of(delivery));
        // The default exchange routes by queue name; mandatory, so a
        // missing `email.errors` is an error here, not a silent drop.
        self.broker
            .publish_routed("", EMAIL_ERRORS_QUEUE, &properties, &delivery.data)
            .await?;
        metrics::counter!("email_dead_letters_total", "queue" => self.queue).increment(1);
        Ok(())
    }
}
