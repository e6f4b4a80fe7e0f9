//! The RabbitMQ adapter against a real broker: topology, routing, message
//! properties, dual publishing.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use lapin::{
    ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::FieldTable,
};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        bus::topology::{EMAIL_ERRORS_QUEUE, EMAIL_QUEUE, EVENTS_EXCHANGE},
    },
    domain::{events::EventEnvelope, locale::Locale},
};

use crate::servers::{Probe, amqp_url, body, message_id};

pub const WAIT: Duration = Duration::from_secs(5);

/// The shared fixtures (`smap_identity::test_support::events`), under the
/// names the RabbitMQ tests import them by.
pub use smap_identity::test_support::events::{event_service as events, trial, verification};

pub async fn broker(url: &str) -> AmqpBroker {
    let broker = AmqpBroker::connect(url, AmqpConfig::default()).await;
    assert!(broker.is_connected(), "the test broker is reachable");
    broker
}

#[tokio::test]
async fn the_topology_exists_with_the_right_types_and_flags() {
    let Some(url) = amqp_url() else { return };
    let broker = broker(&url).await;

    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    #[cfg(feature = "legacy-fanout")]
    use smap_identity::adapters::bus::topology::{LEGACY_EXCHANGE, LEGACY_QUEUE};
    let exchanges = [
        (EVENTS_EXCHANGE, ExchangeKind::Topic),
        #[cfg(feature = "legacy-fanout")]
        (LEGACY_EXCHANGE, ExchangeKind::Fanout),
    ];
    let queues = [
        EMAIL_QUEUE,
        EMAIL_ERRORS_QUEUE,
        #[cfg(feature = "legacy-fanout")]
        LEGACY_QUEUE,
    ];
    for (name, kind) in exchanges {
        let ch = broker.admin_channel().await.unwrap();
        ch.exchange_declare(name.into(), kind.clone(), passive, FieldTable::default())
            .await
            .expect("exists");
        let ch = broker.admin_channel().await.unwrap();
        ch.exchange_declare(name.into(), kind.clone(), durable, FieldTable::default())
            .await
            .expect("same type, durable, not auto-delete, not internal");
        let wrong = if matches!(kind, ExchangeKind::Topic) {
            ExchangeKind::Fanout
        } else {
            ExchangeKind::Topic
        };
        let ch = broker.admin_channel().await.unwrap();
        assert!(
            ch.exchange_declare(name.into(), wrong, durable, FieldTable::default())
                .await
                .is_err(),
            "{name} has another type"
        );
        let ch = broker.admin_channel().await.unwrap();
        let transient = ExchangeDeclareOptions::default();
        assert!(
            ch.exchange_declare(name.into(), kind, transient, FieldTable::default())
                .await
                .is_err(),
            "{name} is durable"
        );
    }
    for queue in queues {
        let ch = broker.admin_channel().await.unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(queue.into(), durable, FieldTable::default())
            .await
            .expect("durable queue");
        let ch = broker.admin_channel().await.unwrap();
        assert!(
            ch.queue_declare(
                queue.into(),
                QueueDeclareOptions::default(),
                FieldTable::default()
            )
            .await
            .is_err(),
            "{queue} is durable"
        );
    }
    broker.close().await;
}

#[tokio::test]
async fn email_events_reach_email_bindings_and_subscription_events_subscription_bindings() {
    let Some(url) = amqp_url() else { return };
    let broker = broker(&url).await;
    let mut emails = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let mut subscriptions = Probe::bind(&url, EVENTS_EXCHANGE, "subscription.#").await;
    let events = events(Arc::new(AmqpEventPublisher::new(broker.clone())));

    let email_id = events
        .publish(verification(Locale::En))
        .await
        .unwrap()
        .to_string();
    let subscription_id = events.publish(trial()).await.unwrap().to_string();
    let ours = |d: &lapin::message::Delivery| {
        [email_id.as_str(), subscription_id.as_str()].contains(&message_id(d).as_str())
    };

    let got_emails = emails.collect(Duration::from_secs(2), 2, ours).await;
    let got_subscriptions = subscriptions.collect(Duration::from_secs(2), 2, ours).await;

    assert_eq!(
        got_emails.iter().map(message_id).collect::<Vec<_>>(),
        [email_id]
    );
    assert_eq!(
        got_subscriptions.iter().map(message_id).collect::<Vec<_>>(),
        [subscription_id]
    );
    broker.close().await;
}

#[tokio::test]
async fn a_published_event_carries_every_amqp_property_and_the_envelope() {
    let Some(url) = amqp_url() else { return };
    crate::helpers::init_logs();
    let broker = broker(&url).await;
    let mut probe = Probe::bind(&url, EVENTS_EXCHANGE, "subscription.created").await;
    let events = events(Arc::new(AmqpEventPublisher::new(broker.clone())));
    let sealed = events.prepare(trial()).await.unwrap();
    let before = Utc::now().timestamp() as u64;

    events.publish_sealed(&sealed).await.unwrap();

    let id = sealed.event_id().to_string();
    let got = probe.collect(WAIT, 1, |d| message_id(d) == id).await;
    let delivery = got.first().expect("the event arrives");
    let p = &delivery.properties;
    assert_eq!(
        p.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(p.kind().as_ref().unwrap().as_str(), "subscription.created");
    assert_eq!(p.app_id().as_ref().unwrap().as_str(), "identity");
    let headers = p.headers().as_ref().expect("headers");
    let traceparent = match headers.inner().get("traceparent") {
        Some(lapin::types::AMQPValue::LongString(s)) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        other => panic!("no traceparent header: {other:?}"),
    };
    assert!(
        traceparent.starts_with("00-") && traceparent.len() == 55,
        "{traceparent}"
    );
    let ts = p.timestamp().expect("timestamp");
    assert!(
        ts >= before.saturating_sub(1) && ts <= before + 5,
        "timestamp {ts} vs {before}"
    );
    assert_eq!(delivery.data, sealed.body());
    let envelope = EventEnvelope::from_json(&delivery.data).unwrap();
    assert_eq!(&envelope, sealed.envelope());
    let json = body(delivery);
    assert_eq!(
        json["payload"]["idempotency_key"],
        json["payload"]["data"]["subscription_id"]
    );
    let stamp = json["timestamp"].as_str().unwrap();
    assert!(stamp.ends_with('Z') && stamp.len() == 24, "{stamp}");
    broker.close().await;
}

#[tokio::test]
async fn many_publishes_in_flight_are_all_confirmed() {
    let Some(url) = amqp_url() else { return };
    let broker = broker(&url).await;
    let mut probe = Probe::bind(&url, EVENTS_EXCHANGE, "subscription.created").await;
    let events = Arc::new(events(Arc::new(AmqpEventPublisher::new(broker.clone()))));

    let ids: Vec<String> = futures_util::future::join_all((0..300).map(|_| {
        let events = events.clone();
        async move { events.publish(trial()).await.unwrap().to_string() }
    }))
    .await;

    let wanted: std::collections::HashSet<String> = ids.into_iter().collect();
    let got = probe
        .collect(WAIT, 300, |d| wanted.contains(&message_id(d)))
        .await;
    assert_eq!(got.len(), 300);
    broker.close().await;
}

/// `AMQP_QUEUE_TYPE=quorum` on the shared (single) node: a message
/// returned by consumers again and again is delivered the delivery limit
/// plus once, then dead-lettered by the broker to `email.errors` — not
/// dropped, and not redelivered for ever.
#[tokio::test]
async fn a_quorum_queue_dead_letters_a_message_to_email_errors_after_the_delivery_limit() {
    use lapin::{
        BasicProperties, Connection, ConnectionProperties,
        options::{BasicGetOptions, BasicPublishOptions, BasicRejectOptions},
        types::AMQPValue,
    };
    use smap_identity::adapters::amqp::{QUORUM_DELIVERY_LIMIT, QueueType};

    let Some(url) = amqp_url() else { return };
    let vhost = crate::servers::Vhost::new(&url, "quorum");
    let broker = AmqpBroker::connect(
        &vhost.url,
        AmqpConfig {
            queue_type: QueueType::Quorum,
            ..AmqpConfig::default()
        },
    )
    .await;
    assert!(broker.is_connected(), "{:?}", broker.last_error());
    let connection = Connection::connect(&vhost.url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_publish(
            "".into(),
            EMAIL_QUEUE.into(),
            BasicPublishOptions::default(),
            b"{\"poison\":true}",
            BasicProperties::default().with_message_id("poison-1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    // Act: every delivery is handed back.
    let mut deliveries = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match channel
            .basic_get(EMAIL_QUEUE.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            Some(message) => {
                deliveries += 1;
                // reject, not nack: RabbitMQ ≥ 4.3 no longer counts a
                // requeueing nack as a delivery.
                message
                    .delivery
                    .reject(BasicRejectOptions { requeue: true })
                    .await
                    .unwrap();
            }
            None if deliveries > QUORUM_DELIVERY_LIMIT => break,
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{deliveries} deliveries"
        );
    }
    let mut dead = None;
    while dead.is_none() && std::time::Instant::now() < deadline {
        dead = channel
            .basic_get(EMAIL_ERRORS_QUEUE.into(), BasicGetOptions::default())
            .await
            .unwrap();
        if dead.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    broker.close().await;

    // Assert
    assert_eq!(deliveries, QUORUM_DELIVERY_LIMIT + 1);
    let dead = dead.expect("the message is in email.errors");
    assert_eq!(
        dead.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        Some("poison-1")
    );
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let reason = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(deaths)) => match deaths.as_slice().first() {
            Some(AMQPValue::FieldTable(death)) => death.inner().get("reason").cloned(),
            _ => None,
        },
        _ => None,
    };
    assert_eq!(
        reason,
        Some(AMQPValue::LongString("delivery_limit".into())),
        "{headers:?}"
    );
}

/// Queues cannot change type in place: a service set to quorum on a
/// broker whose queues are classic does not connect, and says why and
/// where the migration is described — on every try, not only the first.
#[tokio::test]
async fn quorum_settings_on_classic_queues_are_refused_naming_the_setting_and_the_migration() {
    use smap_identity::adapters::amqp::QueueType;

    let Some(url) = amqp_url() else { return };
    let vhost = crate::servers::Vhost::new(&url, "qtype");
    let classic = broker(&vhost.url).await;
    classic.close().await;

    let quorum = AmqpBroker::connect(
        &vhost.url,
        AmqpConfig {
            queue_type: QueueType::Quorum,
            connect_timeout: Duration::from_secs(2),
            ..AmqpConfig::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = quorum.is_connected();
    let error = quorum.last_error().unwrap_or_default();
    quorum.close().await;

    assert!(!connected);
    assert!(error.contains("AMQP_QUEUE_TYPE=quorum"), "{error}");
    assert!(error.contains("inequivalent arg"), "{error}");
    assert!(error.contains("docs/event-migration-guide.md"), "{error}");
}

/// `AMQP_URL` as a list: a node that refuses connections, listed first, is
/// passed over for the next one.
#[tokio::test]
async fn a_dead_node_listed_first_is_passed_over_for_a_live_one() {
    let Some(url) = amqp_url() else { return };
    let dead_port = crate::servers::free_port();
    let list = format!("amqp://guest:guest@127.0.0.1:{dead_port}/%2f, {url}");
    let live_port = url
        .split(['@', '/'])
        .find_map(|part| part.strip_prefix("127.0.0.1:"))
        .unwrap_or_default()
        .to_owned();

    let broker = AmqpBroker::connect(&list, AmqpConfig::default()).await;
    let node = broker.connected_node();
    let publish = events(Arc::new(AmqpEventPublisher::new(broker.clone())))
        .publish(trial())
        .await;
    broker.close().await;

    assert_eq!(node, Some(format!("127.0.0.1:{live_port}")));
    assert!(publish.is_ok(), "{publish:?}");
}
