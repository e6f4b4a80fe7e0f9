//! E-mail throughput: a full `smtp_send_email_v2` queue drained by the
//! RabbitMQ consumers into a local SMTP sink (aiosmtpd, Maildir), next to
//! the sink's own ceiling measured in the same run by a plain pooled SMTP
//! client sending the same e-mails as fast as it can.
//!
//! Run: `scripts/bench.sh --bench email`.

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{Duration as Span, Utc};
use futures_util::{StreamExt, stream};
use lapin::{options::QueuePurgeOptions, types::FieldTable};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher, ConsumerConfig, EmailConsumers},
        clock::{RandomIds, SystemClock},
        mail::{EmailHandler, MessageFormat, SmtpMailer},
        memory::{InMemoryDedup, InMemoryPlanCatalog},
        templates::EmailTemplates,
        topology::EMAIL_QUEUE,
    },
    app::config::{SmtpSettings, SmtpTls},
    domain::{
        email::Email,
        events::{EmailVerificationPayload, EventData, EventService},
        locale::Locale,
        mail::DeliveryService,
        otp::OtpCode,
        timestamp::Timestamp,
    },
    ports::{Mailer, OutgoingEmail},
};
use uuid::Uuid;

const N: usize = 2000;
const CONCURRENCY: usize = 16;

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn wait_for(dir: &Path, n: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while count(dir) < n && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let amqp = std::env::var("AMQP_URL").expect("AMQP_URL: run scripts/bench.sh");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("smap-bench-mail-{}", Uuid::new_v4().simple()));
    let mut sink = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aiosmtpd (scripts/services.sh install)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let smtp = SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "SMAP <no-reply@smap.test>".into(),
        timeout: Duration::from_secs(10),
    };
    let templates = Arc::new(EmailTemplates::new().unwrap());

    // The sink's ceiling: the same rendered e-mails straight over SMTP.
    let plain: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(&smtp).unwrap());
    let emails: Vec<OutgoingEmail> = (0..N)
        .map(|i| {
            let payload = EmailVerificationPayload {
                user_id: Uuid::new_v4(),
                recipient: Email::parse(&format!("plain{i}@example.com")).unwrap(),
                otp_code: OtpCode::from_number(i as u32),
                locale: Locale::En,
                expires_at: Timestamp::new(Utc::now() + Span::minutes(10)),
            };
            let r = templates
                .render_verification(&payload, Timestamp::new(Utc::now()))
                .unwrap();
            OutgoingEmail {
                message_id: format!("plain-{i}"),
                to: payload.recipient.to_string(),
                subject: r.subject,
                html: r.html,
                text: Some(r.text),
                reply_to: None,
                cc: Vec::new(),
            }
        })
        .collect();
    let started = Instant::now();
    stream::iter(emails.iter())
        .map(|e| {
            let plain = plain.clone();
            async move { plain.send(e).await.unwrap() }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    wait_for(&dir, N, Duration::from_secs(60)).await;
    let ceiling = N as f64 / started.elapsed().as_secs_f64();

    // Ours: a full queue, then the consumers drain it.
    let broker = AmqpBroker::connect(&amqp, AmqpConfig::default()).await;
    let admin = broker.admin_channel().await.unwrap();
    admin
        .queue_purge(EMAIL_QUEUE.into(), QueuePurgeOptions::default())
        .await
        .unwrap();
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
                    user_id: Uuid::new_v4(),
                    recipient: Email::parse(&format!("queued{i}@example.com")).unwrap(),
                    otp_code: OtpCode::from_number(i as u32),
                    locale: Locale::Vi,
                    expires_at: Timestamp::new(Utc::now() + Span::minutes(10)),
                },
            ))
            .await
            .unwrap();
    }
    let queued = admin
        .queue_declare(
            EMAIL_QUEUE.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count();
    let delivery = Arc::new(DeliveryService::new(
        Arc::new(SmtpMailer::new(&smtp).unwrap()),
        Arc::new(InMemoryDedup::new()),
        Arc::new(RandomIds),
    ));
    let handler = Arc::new(EmailHandler::new(
        templates,
        delivery,
        Arc::new(SystemClock),
    ));
    let before = count(&dir);
    let started = Instant::now();
    let consumers = EmailConsumers::start(
        broker.clone(),
        handler,
        vec![(EMAIL_QUEUE, MessageFormat::Envelope)],
        ConsumerConfig {
            prefetch: 64,
            concurrency: CONCURRENCY,
            drain_timeout: Duration::from_secs(10),
        },
        Arc::new(SystemClock),
    );
    wait_for(&dir, before + N, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    let ours = (count(&dir) - before) as f64 / elapsed.as_secs_f64();
    consumers.stop().await;
    broker.close().await;
    let _ = sink.kill();
    let _ = sink.wait();

    let goal = ours >= 1000.0 || ours >= 0.8 * ceiling;
    println!("queue held {queued} messages; {N} e-mails each way, {CONCURRENCY} at a time\n");
    println!("| measurement | smap-identity consumers | plain SMTP client (same run) | goal |");
    println!("|---|---|---|---|");
    println!(
        "| e-mails/s from a full queue into aiosmtpd | {ours:.0}/s | {ceiling:.0}/s | ≥ 1000/s or ≥ 80 % of the sink's ceiling: {} ({:.0} %) |",
        if goal { "MET" } else { "NOT MET" },
        ours / ceiling * 100.0
    );
}
