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

use std::{
    net::TcpListener,
    sync::atomic::{AtomicU32, Ordering},
};

pub use smtp::{MaildirSink, spawn_aiosmtpd, wait_listening};

/// Where [`free_port`] looks: below Linux's ephemeral range (32768–60999)
/// and above the fixed ports of the shared servers (5442, 6390, 5682, the
/// RabbitMQ cluster's 5711–5713) and under their Erlang distribution
/// ports (+20000).
const FREE_PORTS: std::ops::Range<u32> = 10_000..20_000;

/// A free TCP port on 127.0.0.1 (free when asked: bind it soon).
///
/// Not one the kernel hands out (`bind(0)` picks from the ephemeral
/// range): a server a test starts binds its port seconds later — the
/// Sentinel set-up binds five in turn — and meanwhile any outgoing
/// connection of the tests running beside it may take an ephemeral port as
/// its local port; the server then cannot bind it (the likely cause of a
/// sentinel on 32885 that never came up, decision 73). Ports are handed
/// out in turn from a start that differs by process, each checked free
/// when handed out.
///
/// # Panics
/// When no port of the range can be bound: a test machine without
/// loopback.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = FREE_PORTS.end - FREE_PORTS.start;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let Ok(port) = u16::try_from(FREE_PORTS.start + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FREE_PORTS:?} on 127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();

        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(FREE_PORTS.contains(&u32::from(port)), "{port}");
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "{port}");
        }
    }
}
