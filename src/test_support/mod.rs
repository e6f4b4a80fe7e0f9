//! Fixtures the integration tests and the benches share (feature
//! `test-support`; never in a release build): a free local port, a fresh
//! PostgreSQL database and the Redis settings (`servers`), typical events
//! and an event service around any publisher (`events`), probe queues and
//! a bare confirm-mode channel on RabbitMQ (`amqp`), and an aiosmtpd
//! Maildir sink the SMTP mailer can deliver to (`smtp`).

pub mod amqp;
pub mod events;
pub mod servers;
pub mod smtp;

use std::net::TcpListener;

pub use smtp::{MaildirSink, spawn_aiosmtpd, wait_listening};

/// A free TCP port on 127.0.0.1 (free when asked: bind it soon).
///
/// # Panics
/// When no port can be bound: a test machine without loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
