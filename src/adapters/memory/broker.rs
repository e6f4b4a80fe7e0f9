//! `InMemoryBroker`: a small RabbitMQ look-alike — topic and fanout
//! exchanges, durable-by-name queues, bindings, and one copy of a message per
//! queue however many of its bindings match.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use crate::adapters::bus::{message::MessageProperties, topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Topic,
    Fanout,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("no exchange `{0}`")]
    NoExchange(String),
    #[error("no queue `{0}`")]
    NoQueue(String),
    #[error("exchange `{0}` already exists with another type")]
    KindMismatch(String),
}

/// One message as a queue holds it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub exchange: String,
    pub routing_key: String,
    pub properties: MessageProperties,
    pub body: Arc<[u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Literal(String),
    /// `*`: exactly one word.
    Star,
    /// `#`: zero or more words.
    Hash,
}

/// A topic binding key such as `email.#` or `*.created`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingPattern(Vec<Word>);

impl BindingPattern {
    pub fn new(pattern: &str) -> Self {
        Self(
            pattern
                .split('.')
                .map(|w| match w {
                    "*" => Word::Star,
                    "#" => Word::Hash,
                    other => Word::Literal(other.to_owned()),
                })
                .collect(),
        )
    }

    pub fn matches(&self, routing_key: &str) -> bool {
        let words: Vec<&str> = routing_key.split('.').collect();
        match_words(&self.0, &words)
    }
}

fn match_words(pattern: &[Word], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((Word::Hash, rest)) => (0..=key.len()).any(|skip| match_words(rest, &key[skip..])),
        Some((Word::Star, rest)) => !key.is_empty() && match_words(rest, &key[1..]),
        Some((Word::Literal(word), rest)) => {
            key.first() == Some(&word.as_str()) && match_words(rest, &key[1..])
        }
    }
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<Delivery>,
    ready: Arc<Notify>,
}

struct Binding {
    exchange: String,
    queue: String,
    pattern: BindingPattern,
}

#[derive(Default)]
struct State {
    exchanges: HashMap<String, ExchangeKind>,
    queues: HashMap<String, Queue>,
    bindings: Vec<Binding>,
}

#[derive(Default)]
pub struct InMemoryBroker {
    state: Mutex<State>,
}

impl InMemoryBroker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A broker with the exchanges, queues and bindings of DESIGN §3.
    pub fn with_smap_topology() -> Self {
        let broker = Self::new();
        broker.declare_smap_topology();
        broker
    }

    fn declare_smap_topology(&self) {
        // Declaring fresh names on an empty broker cannot fail.
        let _ = self.declare_exchange(topology::EVENTS_EXCHANGE, ExchangeKind::Topic);
        self.declare_queue(topology::EMAIL_QUEUE);
        self.declare_queue(topology::EMAIL_ERRORS_QUEUE);
        let _ = self.bind(
            topology::EMAIL_QUEUE,
            topology::EVENTS_EXCHANGE,
            topology::EMAIL_BINDING,
        );
        #[cfg(feature = "legacy-fanout")]
        {
            let _ = self.declare_exchange(topology::LEGACY_EXCHANGE, ExchangeKind::Fanout);
            self.declare_queue(topology::LEGACY_QUEUE);
            let _ = self.bind(topology::LEGACY_QUEUE, topology::LEGACY_EXCHANGE, "");
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written
        // in a way later calls would misread, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idempotent, like AMQP: redeclaring with the same kind is fine, with
    /// another kind an error.
    pub fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
        let mut state = self.lock();
        match state.exchanges.get(name) {
            Some(existing) if *existing != kind => Err(BrokerError::KindMismatch(name.to_owned())),
            Some(_) => Ok(()),
            None => {
                state.exchanges.insert(name.to_owned(), kind);
                Ok(())
            }
        }
    }

    pub fn exchange_kind(&self, name: &str) -> Option<ExchangeKind> {
        self.lock().exchanges.get(name).copied()
    }

    pub fn declare_queue(&self, name: &str) {
        self.lock().queues.entry(name.to_owned()).or_default();
    }

    pub fn bind(&self, queue: &str, exchange: &str, pattern: &str) -> Result<(), BrokerError> {
        let mut state = self.lock();
        if !state.exchanges.contains_key(exchange) {
            return Err(BrokerError::NoExchange(exchange.to_owned()));
        }
        if !state.queues.contains_key(queue) {
            return Err(BrokerError::NoQueue(queue.to_owned()));
        }
        let pattern = BindingPattern::new(pattern);
        let exists = state
            .bindings
            .iter()
            .any(|b| b.exchange == exchange && b.queue == queue && b.pattern == pattern);
        if !exists {
            state.bindings.push(Binding {
                exchange: exchange.to_owned(),
                queue: queue.to_owned(),
                pattern,
            });
        }
        Ok(())
    }

    /// Routes a message to every queue with a matching binding (one copy per
    /// queue) and returns how many queues got it; unroutable messages are
    /// dropped, as RabbitMQ does without `mandatory`.
    pub fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: MessageProperties,
        body: &[u8],
    ) -> Result<usize, BrokerError> {
        let mut state = self.lock();
        let kind = *state
            .exchanges
            .get(exchange)
            .ok_or_else(|| BrokerError::NoExchange(exchange.to_owned()))?;
        let mut targets: Vec<String> = state
            .bindings
            .iter()
            .filter(|b| {
                b.exchange == exchange
                    && (kind == ExchangeKind::Fanout || b.pattern.matches(routing_key))
            })
            .map(|b| b.queue.clone())
            .collect();
        targets.sort();
        targets.dedup();
        let body: Arc<[u8]> = Arc::from(body);
        for name in &targets {
            if let Some(queue) = state.queues.get_mut(name) {
                queue.messages.push_back(Delivery {
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                    properties: properties.clone(),
                    body: body.clone(),
                });
                queue.ready.notify_one();
            }
        }
        Ok(targets.len())
    }

    /// Puts a message straight into `queue` (the default exchange's way).
    pub fn enqueue(&self, queue: &str, delivery: Delivery) -> Result<(), BrokerError> {
        let mut state = self.lock();
        let q = state
            .queues
            .get_mut(queue)
            .ok_or_else(|| BrokerError::NoQueue(queue.to_owned()))?;
        q.messages.push_back(delivery);
        q.ready.notify_one();
        Ok(())
    }

    /// Takes the next message of `queue`, if any.
    pub fn try_take(&self, queue: &str) -> Result<Option<Delivery>, BrokerError> {
        let mut state = self.lock();
        let q = state
            .queues
            .get_mut(queue)
            .ok_or_else(|| BrokerError::NoQueue(queue.to_owned()))?;
        Ok(q.messages.pop_front())
    }

    /// Waits for the next message of `queue`.
    pub async fn take(&self, queue: &str) -> Result<Delivery, BrokerError> {
        loop {
            let ready = {
                let mut state = self.lock();
                let q = state
                    .queues
                    .get_mut(queue)
                    .ok_or_else(|| BrokerError::NoQueue(queue.to_owned()))?;
                if let Some(delivery) = q.messages.pop_front() {
                    return Ok(delivery);
                }
                q.ready.clone()
            };
            // `notify_one` stores a permit when nobody waits yet, so a publish
            // between the unlock above and this await is not missed.
            ready.notified().await;
        }
    }

    pub fn message_count(&self, queue: &str) -> Option<usize> {
        self.lock().queues.get(queue).map(|q| q.messages.len())
    }
}

#[cfg(test)]
mod tests {
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
}
