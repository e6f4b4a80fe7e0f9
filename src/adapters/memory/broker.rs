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
mod tests;
