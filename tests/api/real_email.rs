//! The e-mail consumers on real RabbitMQ and Redis. The consumer queues are
//! the shared ones of DESIGN §3, so the whole story is one test: nothing else
//! consumes them.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use smap_identity::{
    adapters::{bus::topology::EMAIL_ERRORS_QUEUE, memory::InMemoryMailer},
    app::wiring::Adapters,
    ports::OutgoingEmail,
};

use crate::{
    helpers::{PASSWORD, Remote},
    servers::{amqp_url, real_settings, run_app},
};

async fn sent_to(mailer: &InMemoryMailer, to: &str, wait: Duration) -> Vec<OutgoingEmail> {
    let deadline = Instant::now() + wait;
    loop {
        let mine: Vec<OutgoingEmail> = mailer.sent().into_iter().filter(|e| e.to == to).collect();
        if !mine.is_empty() || Instant::now() >= deadline {
            return mine;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_send_one_email_per_event_and_dead_letter_what_they_cannot_send() {
    let Some(url) = amqp_url() else { return };
    let Some(mut settings) = real_settings() else {
        return;
    };
    settings.start_consumers = true;
    let mailer = Arc::new(InMemoryMailer::new());
    let mut adapters = Adapters::from_settings(&settings).await.unwrap();
    adapters.mailer = mailer.clone();
    let (base, handle, running) = run_app(&settings, adapters);
    let api = Remote::new(&base);
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string();

    // Dual-publishing is on: the envelope and the legacy copy give one e-mail,
    // in the registration's language.
    let address = format!("real-{suffix}@example.com");
    let (status, _) = api.register_in(&address, PASSWORD, "vi").await;
    assert_eq!(status, 201);
    let first = sent_to(&mailer, &address, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = sent_to(&mailer, &address, Duration::ZERO).await;
    assert_eq!(first.len(), 1, "an e-mail was sent");
    assert_eq!(
        all.len(),
        1,
        "and only one, though two copies were published"
    );
    assert_eq!(all[0].subject, "Mã xác thực SMAP của bạn");
    // Whichever copy came first sent it: the legacy copy carries HTML only.
    let digits = all[0]
        .html
        .split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() == 6);
    assert!(digits, "the OTP is in the e-mail");

    // A send that keeps failing ends in email.errors with its headers; the
    // next e-mail flows again.
    mailer.fail_next(4);
    let doomed = format!("doomed-{suffix}@example.com");
    api.register(&doomed, PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dead = None;
    while dead.is_none() && Instant::now() < deadline {
        if let Some(m) = channel
            .basic_get(
                EMAIL_ERRORS_QUEUE.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            let b = String::from_utf8_lossy(&m.delivery.data).to_string();
            if b.contains(&doomed) {
                dead = Some(m.delivery);
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let dead = dead.expect("the failed e-mail reached email.errors");
    let headers = dead.properties.headers().clone().unwrap();
    let h = |k: &str| {
        headers
            .inner()
            .get(k)
            .map(|v| match v {
                lapin::types::AMQPValue::LongString(s) => {
                    String::from_utf8_lossy(s.as_bytes()).into_owned()
                }
                other => format!("{other:?}"),
            })
            .unwrap_or_default()
    };
    assert_eq!(
        headers.inner().get("x-retry-count"),
        Some(&lapin::types::AMQPValue::LongLongInt(3)),
        "an integer header: {headers:?}"
    );
    assert_eq!(*dead.properties.delivery_mode(), Some(2), "persistent");
    assert!(h("x-error").contains("mail server down"), "{headers:?}");
    assert!(
        h("x-original-exchange").contains("smap.events")
            || h("x-original-exchange").contains("smtp_send_email_exc"),
        "{headers:?}"
    );
    assert!(!h("x-failed-at").is_empty() && !h("message_id").is_empty());

    let after = format!("after-{suffix}@example.com");
    api.register(&after, PASSWORD).await;
    assert_eq!(
        sent_to(&mailer, &after, Duration::from_secs(10))
            .await
            .len(),
        1
    );

    handle.cancel();
    running.await.unwrap().unwrap();
}

/// `consume` serves the system routes and nothing else: it is probed and
/// scraped like the API (its e-mail counters live only in its process).
#[tokio::test]
async fn consume_answers_probes_health_and_metrics_but_no_api_route() {
    let (Some(amqp), Some(redis)) = (crate::servers::amqp_url(), crate::servers::redis()) else {
        return;
    };
    let vhost = crate::servers::Vhost::new(&amqp, "consume-ops");
    let redis_port = redis.port.to_string();
    let env = [
        ("AMQP_URL", vhost.url.as_str()),
        ("REDIS_HOST", redis.host.as_str()),
        ("REDIS_PORT", redis_port.as_str()),
        ("RUST_LOG", "info"),
    ];
    let consumer = crate::process::Service::start_command("consume", &env).await;
    let remote = Remote::new(&consumer.base);

    let (ready_status, ready_body) = remote.get("/ready", None).await;
    let metrics = remote.text("/metrics").await;
    let health = remote.get_status("/health/rabbitmq").await;
    let (api_status, api_body) = remote.get("/plans", None).await;
    let (_, lines) = consumer.stop().await;

    assert_eq!(ready_status, 200, "{ready_body}");
    assert_eq!(
        ready_body["data"]["checks"]["rabbitmq"]["status"],
        "healthy"
    );
    assert!(metrics.contains("emails_processed_total"), "{metrics}");
    assert!(metrics.contains("dependency_up"), "{metrics}");
    assert_eq!(health, 200);
    assert_eq!(api_status, 404);
    assert!(
        api_body["message"]
            .as_str()
            .is_some_and(|m| m.contains("/live, /ready, /health and /metrics only")),
        "{api_body}"
    );
    assert!(
        lines.iter().any(|l| l.contains("e-mail consumers stopped")),
        "{}",
        lines.join("\n")
    );
}
