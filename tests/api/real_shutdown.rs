//! SIGTERM while e-mails are in flight: `smap-identity consume` stops within
//! 10 s, and after a restart every e-mail has been sent exactly once. Runs
//! on a RabbitMQ node and an SMTP sink of its own.

use std::{
    collections::HashSet,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{Duration as Span, Utc};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        memory::InMemoryPlanCatalog,
        system::{RandomIds, SystemClock},
    },
    domain::{
        email_address::Email,
        events::{EmailVerificationPayload, EventData, EventService},
        locale::Locale,
        otp::OtpCode,
        timestamp::Timestamp,
    },
};

use crate::{
    real_smtp::Sink,
    servers::{amqp_url, free_port, redis, services},
};

const N: usize = 300;

fn message_ids(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("new"))
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter_map(|mail| {
                    mail.lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                        .map(|l| {
                            l.split_once(':')
                                .map(|(_, v)| v.trim().to_owned())
                                .unwrap_or_default()
                        })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn consume(amqp: &str, smtp_port: u16) -> Child {
    let redis = redis().expect("REDIS_HOST");
    Command::new(env!("CARGO_BIN_EXE_smap-identity"))
        .arg("consume")
        .env("AMQP_URL", amqp)
        .env("REDIS_HOST", &redis.host)
        .env("REDIS_PORT", redis.port.to_string())
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp_port.to_string())
        .env("SMTP_TLS", "none")
        .env("EMAIL_CONCURRENCY", "8")
        .env("HTTP_PORT", "0")
        .env("CONSUME_LEGACY_QUEUE", "false")
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("consume starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_emails_are_in_flight_loses_none_and_sends_none_twice() {
    if amqp_url().is_none() || redis().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("smap-sigterm-{}", uuid::Uuid::new_v4().simple()));
    let rabbit = dir.join("rabbit").to_string_lossy().into_owned();
    let (port, dist, smtp) = (free_port(), free_port(), free_port());
    services(&[
        "rabbitmq-start",
        &rabbit,
        &port.to_string(),
        &dist.to_string(),
    ]);
    let amqp = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let maildir = dir.join("mail");
    let sink = Sink::start(smtp, &maildir).expect("aiosmtpd (scripts/services.sh install)");
    let broker = AmqpBroker::connect(&amqp, AmqpConfig::default()).await;
    let events = EventService::new(
        Arc::new(AmqpEventPublisher::new(broker.clone())),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    );
    for i in 0..N {
        events
            .publish(EventData::EmailVerificationRequested(
                EmailVerificationPayload {
                    user_id: uuid::Uuid::new_v4(),
                    recipient: Email::parse(&format!("term{i}@example.com")).unwrap(),
                    otp_code: OtpCode::from_number(i as u32),
                    locale: Locale::En,
                    expires_at: Timestamp::new(Utc::now() + Span::minutes(10)),
                },
            ))
            .await
            .unwrap();
    }

    let mut first = consume(&amqp, smtp);
    let deadline = Instant::now() + Duration::from_secs(30);
    while message_ids(&maildir).len() < N / 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent_before_term = message_ids(&maildir).len();
    Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    let term = Instant::now();
    let mut exited = None;
    while exited.is_none() && term.elapsed() < Duration::from_secs(15) {
        exited = first.try_wait().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop_took = term.elapsed();
    if exited.is_none() {
        let _ = first.kill();
    }
    let reaped = first.wait().expect("reap the first consumer");
    let mut second = consume(&amqp, smtp);
    let deadline = Instant::now() + Duration::from_secs(60);
    while message_ids(&maildir).len() < N && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = message_ids(&maildir);
    let _ = second.kill();
    let _ = second.wait();
    drop(sink);
    broker.close().await;
    services(&["rabbitmq-stop", &rabbit, &port.to_string()]);

    assert!(
        sent_before_term > 0 && sent_before_term < N,
        "SIGTERM came mid-stream ({sent_before_term} sent)"
    );
    assert!(exited.is_some(), "consume exited after SIGTERM");
    assert!(reaped.success(), "clean exit: {reaped:?}");
    assert!(
        stop_took < Duration::from_secs(10),
        "stopped within 10 s: {stop_took:?}"
    );
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "no e-mail sent twice");
    assert_eq!(ids.len(), N, "no e-mail lost");
}
