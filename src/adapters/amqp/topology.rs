//! Declares the topology of DESIGN §3; idempotent, so every (re)connect and
//! `events declare` may run it. The queues are classic or, for a cluster,
//! quorum queues (`AMQP_QUEUE_TYPE`, DESIGN §10 "Clustered servers").

use std::{fmt, str::FromStr};

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use crate::adapters::bus::topology::{
    EMAIL_BINDING, EMAIL_ERRORS_QUEUE, EMAIL_QUEUE, EVENTS_EXCHANGE,
};
#[cfg(feature = "legacy-fanout")]
use crate::adapters::bus::topology::{LEGACY_EXCHANGE, LEGACY_QUEUE};

/// Deliveries of one message before a quorum queue dead-letters it to
/// `email.errors`. RabbitMQ 3.x has no limit by default (4.x: 20); a
/// consumer or node lost with the message unacked also counts, so the
/// limit is generous. A queue's arguments cannot change: another value
/// here is a queue migration (docs/event-migration-guide.md).
pub const QUORUM_DELIVERY_LIMIT: i32 = 20;

/// The type of the queues this service declares (`AMQP_QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    /// One node holds each queue: the single-node default.
    #[default]
    Classic,
    /// Replicated on a majority of a cluster's nodes (Raft): survives the
    /// loss of a minority, the queue's leader included.
    Quorum,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "classic" => Ok(Self::Classic),
            "quorum" => Ok(Self::Quorum),
            _ => Err(()),
        }
    }
}

pub(super) fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

pub(crate) fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The arguments of a queue of this service. Classic queues have none (as
/// before quorum support, so existing queues redeclare as they are). A
/// quorum queue that consumers read gets the delivery limit, dead-lettered
/// at least once (RabbitMQ ≥ 3.10: the strategy works only together with
/// `reject-publish`) to `email.errors` through the default exchange;
/// `email.errors` itself has no dead-letter target, so nothing loops.
pub fn queue_arguments(queue: &str, queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    if queue_type == QueueType::Quorum {
        let text = |s: &str| AMQPValue::LongString(s.into());
        args.insert("x-queue-type".into(), text("quorum"));
        if queue != EMAIL_ERRORS_QUEUE {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(QUORUM_DELIVERY_LIMIT),
            );
            args.insert("x-dead-letter-exchange".into(), text(""));
            args.insert("x-dead-letter-routing-key".into(), text(EMAIL_ERRORS_QUEUE));
            args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
            args.insert("x-overflow".into(), text("reject-publish"));
        }
    }
    args
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

/// The queues this service declares, dead-letter target first (a quorum
/// queue's dead letters need it to exist).
pub fn queues() -> Vec<&'static str> {
    vec![
        EMAIL_ERRORS_QUEUE,
        EMAIL_QUEUE,
        #[cfg(feature = "legacy-fanout")]
        LEGACY_QUEUE,
    ]
}

pub async fn declare_topology(channel: &Channel, queue_type: QueueType) -> lapin::Result<()> {
    for (name, kind, _) in exchanges() {
        channel
            .exchange_declare(name.into(), kind, durable_exchange(), FieldTable::default())
            .await?;
    }
    for queue in queues() {
        channel
            .queue_declare(
                queue.into(),
                durable_queue(),
                queue_arguments(queue, queue_type),
            )
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
    channel
        .queue_bind(
            LEGACY_QUEUE.into(),
            LEGACY_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_queues_have_no_arguments_so_existing_queues_redeclare_unchanged() {
        for queue in queues() {
            assert!(
                queue_arguments(queue, QueueType::Classic)
                    .inner()
                    .is_empty()
            );
        }
    }

    #[test]
    fn quorum_queues_dead_letter_at_least_once_after_the_delivery_limit_except_the_errors_queue() {
        let args = queue_arguments(EMAIL_QUEUE, QueueType::Quorum);
        let get = |k: &str| args.inner().get(k).cloned();
        assert_eq!(
            get("x-queue-type"),
            Some(AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongInt(20)));
        assert_eq!(
            get("x-dead-letter-routing-key"),
            Some(AMQPValue::LongString(EMAIL_ERRORS_QUEUE.into()))
        );
        assert_eq!(
            get("x-dead-letter-strategy"),
            Some(AMQPValue::LongString("at-least-once".into()))
        );
        assert_eq!(
            get("x-overflow"),
            Some(AMQPValue::LongString("reject-publish".into()))
        );
        let errors = queue_arguments(EMAIL_ERRORS_QUEUE, QueueType::Quorum);
        assert_eq!(errors.inner().len(), 1, "email.errors: only its type");
    }

    #[test]
    fn queue_type_parses_its_two_names_only() {
        assert_eq!("quorum".parse(), Ok(QueueType::Quorum));
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert_eq!("Quorum".parse::<QueueType>(), Err(()));
    }
}
