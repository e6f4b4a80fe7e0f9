//! `smap-identity events declare | status | cleanup-legacy` on a RabbitMQ
//! node of the test's own (cleanup deletes shared names).

use std::process::{Command, Output};

use crate::servers::{amqp_url, free_port, services};

fn run(args: &[&str], amqp: &str, dual: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smap-identity"))
        .args(args)
        .env("AMQP_URL", amqp)
        .env("ENABLE_DUAL_PUBLISH", dual)
        .env("RUST_LOG", "error")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_HOST")
        .output()
        .expect("the binary runs")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_tool_declares_reports_and_cleans_up_the_legacy_path_safely() {
    if amqp_url().is_none() {
        return;
    }
    let dir = std::env::temp_dir()
        .join(format!("smap-events-{}", uuid::Uuid::new_v4().simple()))
        .to_string_lossy()
        .into_owned();
    let (port, dist) = (free_port(), free_port());
    services(&["rabbitmq-start", &dir, &port.to_string(), &dist.to_string()]);
    let amqp = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");

    let declared = run(&["events", "declare"], &amqp, "true");
    let status = run(&["events", "status"], &amqp, "true");
    let refused_dual = run(&["events", "cleanup-legacy"], &amqp, "true");
    // A message waiting in the legacy queue blocks the cleanup too.
    let connection = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_publish(
            "smtp_send_email_exc".into(),
            "".into(),
            lapin::options::BasicPublishOptions::default(),
            b"{}",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let refused_busy = run(&["events", "cleanup-legacy"], &amqp, "false");
    channel
        .queue_purge(
            "smtp_send_email".into(),
            lapin::options::QueuePurgeOptions::default(),
        )
        .await
        .unwrap();
    let cleaned = run(&["events", "cleanup-legacy"], &amqp, "false");
    let after = run(&["events", "status"], &amqp, "false");
    services(&["rabbitmq-stop", &dir, &port.to_string()]);

    assert!(declared.status.success(), "{}", out(&declared));
    let status = out(&status);
    assert!(
        status.contains("exchange smap.events: present, topic, durable"),
        "{status}"
    );
    assert!(
        status.contains("queue smtp_send_email_v2: classic, 0 message(s)"),
        "{status}"
    );
    assert!(!refused_dual.status.success());
    assert!(
        out(&refused_dual).contains("ENABLE_DUAL_PUBLISH"),
        "{}",
        out(&refused_dual)
    );
    assert!(!refused_busy.status.success());
    assert!(
        out(&refused_busy).contains("1 message"),
        "{}",
        out(&refused_busy)
    );
    assert!(cleaned.status.success(), "{}", out(&cleaned));
    let after = out(&after);
    assert!(
        after.contains("exchange smtp_send_email_exc: absent"),
        "{after}"
    );
    assert!(after.contains("queue smtp_send_email: absent"), "{after}");
    assert!(after.contains("exchange smap.events: present"), "{after}");
}
