//! RabbitMQ (lapin): one long-lived connection with a small pool of
//! confirm-mode channels, the DESIGN §3 topology declared on every
//! (re)connect, and reconnection with backoff after the broker goes away —
//! without restarting the process.

mod ack_window;
mod broker;
mod consumer;
mod health;
mod publisher;
mod received;
pub mod tooling;
mod topology;

pub use broker::{AmqpBroker, AmqpConfig, split_urls, to_lapin};
pub use consumer::{ConsumerConfig, EmailConsumers};
pub use health::AmqpHealth;
pub use publisher::AmqpEventPublisher;
#[cfg(feature = "legacy-fanout")]
pub use publisher::AmqpLegacySink;
pub use topology::{QUORUM_DELIVERY_LIMIT, QueueType, declare_topology, queue_arguments};
