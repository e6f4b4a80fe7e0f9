//! The consumer examples of docs/event-migration-guide.md work: the Rust one
//! (examples/consumer.rs, built by `cargo test`) and the Python one
//! (examples/consumer.py, pika) each bind a queue on real RabbitMQ, receive
//! what this service publishes, see the trace context, and skip a
//! redelivered event by its `event_id`.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        memory::InMemoryPlanCatalog,
        system::{RandomIds, SystemClock},
    },
    domain::{
        events::{EventData, EventService, JobCompletedPayload},
        progress::ProjectId,
        timestamp::Timestamp,
    },
};
use tracing::Instrument;

use crate::servers::{Vhost, amqp_url};

fn job(project: &str) -> EventData {
    EventData::JobCompleted(JobCompletedPayload {
        project_id: ProjectId::parse(project).unwrap(),
        total: 3,
        done: 3,
        errors: 1,
        completed_at: Timestamp::new(Utc::now()),
    })
}

/// The Rust example's binary, next to this test binary's directory.
fn rust_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/consumer");
    assert!(
        path.exists(),
        "{path:?} missing: `cargo test` builds the examples (scripts/test.sh runs it)"
    );
    path
}

/// Runs the example on a vhost of its own: other tests publish
/// `job.completed` on the shared one, and the example would see them too.
async fn run_example(command: Command, amqp_url: &str) {
    let vhost = Vhost::new(amqp_url, "example");
    run_example_on(command, &vhost.url).await;
}

async fn run_example_on(mut command: Command, url: &str) {
    crate::helpers::init_logs();
    let queue = format!("example.{}", uuid::Uuid::new_v4().simple());
    let mut child = command
        .env("AMQP_URL", url)
        .env("QUEUE", &queue)
        .env("PATTERN", "job.#")
        .env("EXIT_AFTER", "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let kept = lines.clone();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("ready "))
    {
        assert!(Instant::now() < deadline, "the example never got ready");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the example exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One event delivered twice (as a redelivery or dual publish would),
    // then another, each published inside a traced span.
    let broker = AmqpBroker::connect(url, AmqpConfig::default()).await;
    let events = EventService::new(
        Arc::new(AmqpEventPublisher::new(broker)),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    );
    let span = tracing::info_span!("example_test");
    let first = events.prepare(job("example-1")).await.unwrap();
    let second = events.prepare(job("example-2")).await.unwrap();
    async {
        events.publish_sealed(&first).await.unwrap();
        events.publish_sealed(&first).await.unwrap();
        events.publish_sealed(&second).await.unwrap();
    }
    .instrument(span)
    .await;

    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the example did not finish: {:?}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.join().unwrap();
    let lines = lines.lock().unwrap().clone();
    let (a, b) = (first.event_id().to_string(), second.event_id().to_string());
    let handled: Vec<&String> = lines.iter().filter(|l| l.starts_with("handled ")).collect();
    assert_eq!(handled.len(), 2, "{lines:#?}");
    assert!(
        handled[0].starts_with(&format!("handled {a} job.completed traceparent=00-")),
        "{lines:#?}"
    );
    assert!(
        handled[0].contains(r#""project_id":"example-1""#),
        "{lines:#?}"
    );
    assert!(lines.contains(&format!("duplicate {a}")), "{lines:#?}");
    assert!(
        handled[1].starts_with(&format!("handled {b} ")),
        "{lines:#?}"
    );

    // The example's queue is durable; remove it.
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_consumer_example_receives_dedups_and_sees_the_trace() {
    let Some(url) = amqp_url() else { return };
    run_example(Command::new(rust_example()), &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_example_receives_dedups_and_sees_the_trace() {
    let Some(url) = amqp_url() else { return };
    let mut command = Command::new("python3");
    command.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/consumer.py"));
    run_example(command, &url).await;
}
