//! RabbitMQ beside the app's topology, for the tests and the benchmarks:
//! queues that watch what reaches an exchange, draining them, and the
//! confirm-mode channel a bare publisher uses.

use lapin::{
    Channel, Connection, ConnectionProperties, Queue,
    message::Delivery,
    options::{BasicGetOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};

/// Declares `queue` with `options` (an empty name lets the broker choose
/// one) and binds it to `exchange` under `pattern`; the declared queue,
/// whose `name()` is the one to consume from.
///
/// # Errors
/// The broker's refusal of either step (e.g. a queue of that name declared
/// with other options, or no such exchange), or a closed channel.
pub async fn bind_queue(
    channel: &Channel,
    queue: &str,
    options: QueueDeclareOptions,
    exchange: &str,
    pattern: &str,
) -> Result<Queue, lapin::Error> {
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            declared.name().clone(),
            exchange.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(declared)
}

/// Takes every message left in `queue` on the broker at `url` (on a
/// connection of its own, closed before returning), oldest first; empty
/// when the queue is.
///
/// # Errors
/// No connection to `url`, or no such queue.
pub async fn drain_queue(url: &str, queue: &str) -> Result<Vec<Delivery>, lapin::Error> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let mut taken = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await?
    {
        taken.push(message.delivery);
    }
    let _ = connection.close(200, "ok".into()).await;
    Ok(taken)
}

/// A connection to `url` and a channel on it in confirm mode, as a bare
/// lapin publisher needs (the baseline the benchmarks measure against).
///
/// # Errors
/// No connection to `url`, or the broker refused the channel.
pub async fn confirm_channel(url: &str) -> Result<(Connection, Channel), lapin::Error> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}
