//! Queues the tests and the benchmarks declare beside the app's topology,
//! to watch what reaches an exchange.

use lapin::{
    Channel, Queue,
    options::{QueueBindOptions, QueueDeclareOptions},
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
