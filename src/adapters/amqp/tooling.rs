//! The RabbitMQ side of `smap-identity events declare | status |
//! cleanup-legacy` (the migration's topology tooling, DESIGN §3): connect,
//! probe exchanges and queues, delete the legacy path. The command line and
//! its settings checks stay in `app::events_tool`.

use lapin::{
    Channel, ExchangeKind,
    options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};

use super::{AmqpBroker, AmqpConfig, QueueType, queue_arguments, topology::durable_queue};
use crate::adapters::bus::topology::{
    EMAIL_ERRORS_QUEUE, EMAIL_QUEUE, EVENTS_EXCHANGE, LEGACY_EXCHANGE, LEGACY_QUEUE,
};

/// A connection to `urls` for one command; fails when RabbitMQ is not
/// reachable (or refuses the topology, when `declare_topology`).
async fn broker(
    urls: &str,
    queue_type: QueueType,
    declare_topology: bool,
) -> anyhow::Result<AmqpBroker> {
    let config = AmqpConfig {
        declare_topology,
        queue_type,
        ..AmqpConfig::default()
    };
    let broker = AmqpBroker::connect(urls, config).await;
    if !broker.is_connected() {
        let cause = broker.last_error().unwrap_or_default();
        broker.close().await;
        anyhow::bail!("AMQP_URL: RabbitMQ is not reachable or refused the topology: {cause}");
    }
    Ok(broker)
}

/// Declares the topology: connecting with `declare_topology` does it.
pub async fn declare(urls: &str, queue_type: QueueType) -> anyhow::Result<()> {
    broker(urls, queue_type, true).await?.close().await;
    Ok(())
}

async fn exchange_state(
    broker: &AmqpBroker,
    name: &str,
    kind: ExchangeKind,
    kind_name: &str,
) -> anyhow::Result<String> {
    let channel = broker.admin_channel().await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    if channel
        .exchange_declare(name.into(), kind.clone(), passive, FieldTable::default())
        .await
        .is_err()
    {
        return Ok(format!("exchange {name}: absent"));
    }
    let channel = broker.admin_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    Ok(
        match channel
            .exchange_declare(name.into(), kind, durable, FieldTable::default())
            .await
        {
            Ok(()) => format!("exchange {name}: present, {kind_name}, durable"),
            Err(_) => format!("exchange {name}: present, NOT {kind_name}/durable as expected"),
        },
    )
}

/// Messages and consumers of a queue, or `None` when it does not exist.
async fn queue_counts(channel: &Channel, name: &str) -> Option<(u32, u32)> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
        .ok()
        .map(|q| (q.message_count(), q.consumer_count()))
}

/// The type of an existing queue. A passive declare does not tell it, so
/// each type's exact arguments are declared in turn, each on a channel of
/// its own (a refusal closes the channel): an equivalent declare changes
/// nothing, a different one is refused. Quorum first, then classic with
/// its type named explicitly: a vhost whose default queue type is quorum
/// (RabbitMQ ≥ 3.13) would accept an argument-less declare on a quorum
/// queue. The caller has just seen the queue exist; one deleted in between
/// would be re-created by the probe (a race this read-only report accepts
/// rather than need the management plugin).
async fn existing_queue_type(broker: &AmqpBroker, name: &str) -> anyhow::Result<String> {
    let mut refusals = Vec::new();
    for queue_type in [QueueType::Quorum, QueueType::Classic] {
        let channel = broker.admin_channel().await?;
        let mut args = queue_arguments(name, queue_type);
        if queue_type == QueueType::Classic {
            args.insert(
                "x-queue-type".into(),
                lapin::types::AMQPValue::LongString("classic".into()),
            );
        }
        match channel
            .queue_declare(name.into(), durable_queue(), args)
            .await
        {
            Ok(_) => return Ok(queue_type.to_string()),
            Err(e) => refusals.push(e.to_string()),
        }
    }
    Ok(format!(
        "neither this service's quorum nor its classic arguments ({})",
        refusals.join("; ")
    ))
}

/// One line per exchange, queue (with type, message and consumer counts)
/// and binding.
pub async fn status(urls: &str, queue_type: QueueType) -> anyhow::Result<Vec<String>> {
    let broker = broker(urls, queue_type, false).await?;
    let mut lines = vec![
        exchange_state(&broker, EVENTS_EXCHANGE, ExchangeKind::Topic, "topic").await?,
        exchange_state(&broker, LEGACY_EXCHANGE, ExchangeKind::Fanout, "fanout").await?,
    ];
    for queue in [EMAIL_QUEUE, EMAIL_ERRORS_QUEUE, LEGACY_QUEUE] {
        // A failed passive declare closes the channel: one channel per queue.
        let channel = broker.admin_channel().await?;
        lines.push(match queue_counts(&channel, queue).await {
            Some((messages, consumers)) => format!(
                "queue {queue}: {}, {messages} message(s), {consumers} consumer(s)",
                existing_queue_type(&broker, queue).await?
            ),
            None => format!("queue {queue}: absent"),
        });
    }
    broker.close().await;
    Ok(lines)
}

/// Deletes the legacy exchange and queue; refuses while the legacy queue
/// still holds messages.
pub async fn delete_legacy(urls: &str, queue_type: QueueType) -> anyhow::Result<()> {
    let broker = broker(urls, queue_type, false).await?;
    let channel = broker.admin_channel().await?;
    if let Some((messages, _)) = queue_counts(&channel, LEGACY_QUEUE).await
        && messages > 0
    {
        broker.close().await;
        anyhow::bail!(
            "refusing: {LEGACY_QUEUE} still holds {messages} message(s); let the legacy consumer drain it"
        );
    }
    let channel = broker.admin_channel().await?;
    channel
        .queue_delete(LEGACY_QUEUE.into(), QueueDeleteOptions::default())
        .await?;
    channel
        .exchange_delete(LEGACY_EXCHANGE.into(), ExchangeDeleteOptions::default())
        .await?;
    broker.close().await;
    Ok(())
}
