//! A minimal consumer of SMAP events in Rust (lapin), the one
//! docs/event-migration-guide.md walks through: bind a queue of your own to
//! `smap.events`, parse the envelope, skip duplicates by `event_id`, pick up
//! the trace context, ack.
//!
//! Run: `AMQP_URL=amqp://guest:guest@localhost:5672/%2f QUEUE=my_service.subscriptions
//! PATTERN='subscription.#' cargo run --example consumer`
//! (`EXIT_AFTER=N` stops after N deliveries; the tests use it).

use std::collections::HashSet;

use futures_util::StreamExt;
use lapin::{
    Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("AMQP_URL")?;
    let queue = std::env::var("QUEUE")?;
    let pattern = std::env::var("PATTERN").unwrap_or_else(|_| "#".into());
    let exit_after: usize = std::env::var("EXIT_AFTER")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);

    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // The same declaration as the publisher's: a durable topic exchange.
    channel
        .exchange_declare(
            "smap.events".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    // Your own durable queue, bound by routing-key pattern.
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            "smap.events".into(),
            pattern.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel.basic_qos(16, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "example-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!("ready {queue} {pattern}");

    // In production keep the seen ids where every instance sees them, e.g.
    // Redis `SET smap:<your-service>:seen:<event_id> 1 NX EX 604800`.
    let mut seen = HashSet::new();
    let mut handled = 0;
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        let envelope: serde_json::Value = serde_json::from_slice(&delivery.data)?;
        let event_id = envelope["event_id"].as_str().unwrap_or_default().to_owned();
        let routing_key = envelope["payload"]["routing_key"]
            .as_str()
            .unwrap_or_default();
        // W3C trace context: continue the producer's trace from here.
        let traceparent = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("traceparent").cloned())
            .and_then(|v| match v {
                AMQPValue::LongString(s) => Some(s.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        if seen.insert(event_id.clone()) {
            let data = &envelope["payload"]["data"];
            println!("handled {event_id} {routing_key} traceparent={traceparent} data={data}");
        } else {
            println!("duplicate {event_id}");
        }
        delivery.ack(BasicAckOptions::default()).await?;
        handled += 1;
        if handled >= exit_after {
            break;
        }
    }
    connection.close(200, "done".into()).await?;
    Ok(())
}
