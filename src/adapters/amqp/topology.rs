//! Declares the topology of DESIGN §3; idempotent, so every (re)connect and
//! `events declare` may run it.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};

use crate::adapters::topology::{EMAIL_BINDING, EMAIL_ERRORS_QUEUE, EMAIL_QUEUE, EVENTS_EXCHANGE};
#[cfg(feature = "legacy-fanout")]
use crate::adapters::topology::{LEGACY_EXCHANGE, LEGACY_QUEUE};

pub(super) fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The exchanges this service publishes to, with their kinds (and the
/// kind's name as `events status` and health reports print it).
pub(super) fn exchanges() -> Vec<(&'static str, ExchangeKind, &'static str)> {
    vec![
        (EVENTS_EXCHANGE, ExchangeKind::Topic, "topic"),
        #[cfg(feature = "legacy-fanout")]
        (LEGACY_EXCHANGE, ExchangeKind::Fanout, "fanout"),
    ]
}

pub async fn declare_topology(channel: &Channel) -> lapin::Result<()> {
    for (name, kind, _) in exchanges() {
        channel
            .exchange_declare(name.into(), kind, durable_exchange(), FieldTable::default())
            .await?;
    }
    for queue in [EMAIL_QUEUE, EMAIL_ERRORS_QUEUE] {
        channel
            .queue_declare(queue.into(), durable_queue(), FieldTable::default())
            .await?;
    }
    channel
        .queue_bind(
            EMAIL_QUEUE.into(),
            EVENTS_EXCHANGE.into(),
            EMAIL_BINDING.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    #[cfg(feature = "legacy-fanout")]
    {
        channel
            .queue_declare(LEGACY_QUEUE.into(), durable_queue(), FieldTable::default())
            .await?;
        channel
            .queue_bind(
                LEGACY_QUEUE.into(),
                LEGACY_EXCHANGE.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}
