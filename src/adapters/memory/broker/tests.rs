//! Unit tests of `InMemoryBroker`: topic patterns, fanout, one copy per
//! queue, and the smap topology.

use super::*;

fn props() -> MessageProperties {
    MessageProperties {
        content_type: "application/json".into(),
        delivery_mode: 2,
        message_id: "m".into(),
        kind: "t".into(),
        app_id: "identity".into(),
        timestamp: 0,
        headers: Default::default(),
    }
}

#[test]
fn topic_patterns_follow_rabbitmq_semantics() {
    let table = [
        ("email.#", "email.verification.requested", true),
        ("email.#", "email", true),
        ("email.#", "emails.sent", false),
        ("email.#", "subscription.created", false),
        ("email.*", "email.sent", true),
        ("email.*", "email.verification.requested", false),
        ("email.*", "email", false),
        ("*.created", "subscription.created", true),
        ("*.created", "project.created", true),
        ("*.created", "subscription.cancelled", false),
        ("*.created", "a.b.created", false),
        ("#", "anything.at.all", true),
        ("#", "x", true),
        ("#.completed", "job.completed", true),
        ("#.completed", "completed", true),
        ("#.completed", "job.completed.late", false),
        ("subscription.#.changed", "subscription.changed", true),
        (
            "subscription.#.changed",
            "subscription.status.changed",
            true,
        ),
        (
            "subscription.#.changed",
            "subscription.status_changed",
            false,
        ),
        ("*.*", "job.completed", true),
        ("*.*", "email.verification.requested", false),
        ("#.#", "a.b.c", true),
        ("job.completed", "job.completed", true),
        ("job.completed", "job.completed.x", false),
    ];
    for (pattern, key, expected) in table {
        assert_eq!(
            BindingPattern::new(pattern).matches(key),
            expected,
            "pattern {pattern:?} key {key:?}"
        );
    }
}

#[test]
fn a_queue_gets_one_copy_even_when_several_bindings_match() {
    let broker = InMemoryBroker::new();
    broker.declare_exchange("x", ExchangeKind::Topic).unwrap();
    broker.declare_queue("q");
    broker.bind("q", "x", "email.#").unwrap();
    broker.bind("q", "x", "*.verification.*").unwrap();

    let routed = broker
        .publish("x", "email.verification.requested", props(), b"{}")
        .unwrap();

    assert_eq!(routed, 1);
    assert_eq!(broker.message_count("q"), Some(1));
}

#[test]
fn fanout_exchanges_ignore_the_routing_key() {
    let broker = InMemoryBroker::new();
    broker.declare_exchange("f", ExchangeKind::Fanout).unwrap();
    broker.declare_queue("a");
    broker.declare_queue("b");
    broker.bind("a", "f", "").unwrap();
    broker.bind("b", "f", "").unwrap();

    assert_eq!(broker.publish("f", "whatever", props(), b"1").unwrap(), 2);
}

#[test]
fn publishing_to_a_missing_exchange_fails_and_redeclaring_another_kind_fails() {
    let broker = InMemoryBroker::with_smap_topology();
    assert_eq!(
        broker.publish("nope", "a.b", props(), b"").unwrap_err(),
        BrokerError::NoExchange("nope".into())
    );
    assert!(
        broker
            .declare_exchange(topology::EVENTS_EXCHANGE, ExchangeKind::Topic)
            .is_ok()
    );
    assert_eq!(
        broker.declare_exchange(topology::EVENTS_EXCHANGE, ExchangeKind::Fanout),
        Err(BrokerError::KindMismatch(topology::EVENTS_EXCHANGE.into()))
    );
}

#[test]
fn the_smap_topology_routes_email_events_to_the_v2_queue_only() {
    let broker = InMemoryBroker::with_smap_topology();
    broker
        .publish(
            topology::EVENTS_EXCHANGE,
            "email.verification.requested",
            props(),
            b"e",
        )
        .unwrap();
    broker
        .publish(
            topology::EVENTS_EXCHANGE,
            "subscription.created",
            props(),
            b"s",
        )
        .unwrap();
    assert_eq!(broker.message_count(topology::EMAIL_QUEUE), Some(1));
    assert_eq!(broker.message_count(topology::EMAIL_ERRORS_QUEUE), Some(0));
}

#[tokio::test]
async fn take_waits_for_a_message_published_later() {
    let broker = Arc::new(InMemoryBroker::with_smap_topology());
    let waiter = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.take(topology::EMAIL_QUEUE).await })
    };
    tokio::task::yield_now().await;
    broker
        .publish(topology::EVENTS_EXCHANGE, "email.sent", props(), b"late")
        .unwrap();

    let delivery = waiter.await.unwrap().unwrap();

    assert_eq!(&*delivery.body, b"late");
}
