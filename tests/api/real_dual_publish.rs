//! Dual publishing over the two real exchanges (migration phases 1-3).

use std::sync::Arc;

use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpEventPublisher, AmqpLegacySink},
        bus::topology::{EVENTS_EXCHANGE, LEGACY_EXCHANGE},
        legacy::DualPublisher,
        legacy::LegacyEmailMessage,
        mail::templates::EmailTemplates,
    },
    domain::{events::EventService, locale::Locale},
};

use crate::{
    real_amqp::{WAIT, broker, events, verification},
    servers::{Probe, amqp_url, body, message_id},
};

async fn dual(url: &str, enabled: bool) -> (AmqpBroker, EventService) {
    let broker = broker(url).await;
    let publisher = DualPublisher::new(
        Arc::new(AmqpEventPublisher::new(broker.clone())),
        Arc::new(AmqpLegacySink::new(broker.clone())),
        enabled,
        Arc::new(EmailTemplates::new().unwrap()),
    );
    (broker, events(Arc::new(publisher)))
}

#[tokio::test]
async fn with_dual_publishing_on_both_exchanges_get_the_email_under_one_message_id() {
    let Some(url) = amqp_url() else { return };
    let (broker, events) = dual(&url, true).await;
    let mut topic = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let mut fanout = Probe::bind(&url, LEGACY_EXCHANGE, "").await;

    let id = events
        .publish(verification(Locale::Vi))
        .await
        .unwrap()
        .to_string();

    let new = topic.collect(WAIT, 1, |d| message_id(d) == id).await;
    let old = fanout.collect(WAIT, 1, |d| message_id(d) == id).await;
    assert_eq!(new.len(), 1, "the topic exchange got the envelope");
    assert_eq!(old.len(), 1, "the fanout exchange got the legacy copy");
    let legacy: LegacyEmailMessage = serde_json::from_slice(&old[0].data).expect("legacy format");
    assert_eq!(legacy.recipient, "probe@example.com");
    assert_eq!(legacy.subject, "Mã xác thực SMAP của bạn");
    assert!(legacy.body.contains("482913"));
    let keys: Vec<String> = body(&old[0]).as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    broker.close().await;
}

#[tokio::test]
async fn with_dual_publishing_off_the_fanout_exchange_gets_nothing() {
    let Some(url) = amqp_url() else { return };
    let (broker, events) = dual(&url, false).await;
    let mut topic = Probe::bind(&url, EVENTS_EXCHANGE, "email.#").await;
    let mut fanout = Probe::bind(&url, LEGACY_EXCHANGE, "").await;

    let id = events
        .publish(verification(Locale::En))
        .await
        .unwrap()
        .to_string();

    assert_eq!(
        topic.collect(WAIT, 1, |d| message_id(d) == id).await.len(),
        1
    );
    assert!(
        fanout
            .collect(std::time::Duration::from_secs(1), 1, |d| message_id(d)
                == id)
            .await
            .is_empty()
    );
    broker.close().await;
}
