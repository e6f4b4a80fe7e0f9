//! Access to the real servers that `scripts/test.sh` starts. A test that
//! needs one and finds its variable unset fails in CI (`CI=true`) and, on a
//! developer's machine, returns early with a clear message.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use lapin::{
    Channel, Connection, ConnectionProperties,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions},
    types::FieldTable,
};
use smap_identity::{
    adapters::redis::RedisConfig, app::config::Settings, test_support::amqp::bind_queue,
};

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "{var} is not set: CI must run the tests through scripts/test.sh, which starts the servers"
            )
        }
        _ => {
            eprintln!("SKIPPED: {var} is unset; run scripts/test.sh to test against real servers");
            None
        }
    }
}

pub fn amqp_url() -> Option<String> {
    required("AMQP_URL")
}

pub fn redis() -> Option<RedisConfig> {
    required("REDIS_HOST")?;
    smap_identity::test_support::servers::redis_from_env()
}

/// Test settings pointing at the real servers (`None` when they are absent).
pub fn real_settings() -> Option<Settings> {
    let mut settings = Settings::for_tests();
    // The e-mail queues are shared by every test on this broker: only the
    // consumer test consumes them.
    settings.start_consumers = false;
    settings.amqp_url = Some(secrecy::SecretString::from(amqp_url()?));
    settings.redis = Some(redis()?);
    Some(settings)
}

/// Binds an application on `adapters` and runs it in the background; its
/// base URL, its shutdown token (cancelling it stops the app as SIGTERM
/// would) and the task that ends when it has stopped.
pub fn run_app(
    settings: &Settings,
    adapters: smap_identity::app::wiring::Adapters,
) -> (
    String,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let app = smap_identity::app::startup::Application::build_with(settings, adapters)
        .expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    (base, shutdown, tokio::spawn(app.run_until_stopped()))
}

/// `scripts/services.sh`, for tests that run servers of their own.
pub fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh")
}

pub fn services(args: &[&str]) {
    let status = Command::new("bash")
        .arg(services_script())
        .args(args)
        .status()
        .expect("run services.sh");
    assert!(status.success(), "services.sh {args:?} failed");
}

pub use smap_identity::test_support::free_port;

/// A private queue bound to an exchange, to watch what reaches it.
pub struct Probe {
    _connection: Connection,
    _channel: Channel,
    consumer: lapin::Consumer,
}

impl Probe {
    pub async fn bind(url: &str, exchange: &str, pattern: &str) -> Probe {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("probe connects");
        let channel = connection.create_channel().await.expect("probe channel");
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = bind_queue(&channel, "", options, exchange, pattern)
            .await
            .expect("probe queue");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("probe consumer");
        Probe {
            _connection: connection,
            _channel: channel,
            consumer,
        }
    }

    /// Messages that arrive within `wait` and satisfy `keep` (others from
    /// concurrent tests are dropped), stopping early once `enough` are kept.
    pub async fn collect(
        &mut self,
        wait: Duration,
        enough: usize,
        keep: impl Fn(&Delivery) -> bool,
    ) -> Vec<Delivery> {
        let deadline = Instant::now() + wait;
        let mut kept = Vec::new();
        while kept.len() < enough {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    delivery.ack(BasicAckOptions::default()).await.expect("ack");
                    if keep(&delivery) {
                        kept.push(delivery);
                    }
                }
                _ => break,
            }
        }
        kept
    }
}

impl Probe {
    /// The OTP of the first verification e-mail to the user `user_id` that
    /// arrives within 5 s (bound the probe to `email.#`).
    pub async fn otp_for(&mut self, user_id: &str) -> String {
        let got = self
            .collect(Duration::from_secs(5), 1, |d| {
                body(d)["payload"]["data"]["user_id"] == user_id
            })
            .await;
        let event = body(got.first().expect("the verification e-mail"));
        let otp = event["payload"]["data"]["otp_code"].as_str();
        otp.expect("an OTP").to_owned()
    }
}

/// The `message_id` property of a delivery.
pub fn message_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The JSON body of a delivery.
pub fn body(delivery: &Delivery) -> serde_json::Value {
    serde_json::from_slice(&delivery.data).expect("a JSON body")
}

/// A new, empty database of its own on the test PostgreSQL; its URL.
pub async fn fresh_database() -> Option<String> {
    let url = required("DATABASE_URL")?;
    Some(smap_identity::test_support::servers::create_database(&url, "t").await)
}

/// A RabbitMQ virtual host of its own on the shared node, for a test that
/// runs consumers on the standard queue names; deleted when dropped.
pub struct Vhost {
    name: String,
    /// `AMQP_URL` with this vhost.
    pub url: String,
}

impl Vhost {
    pub fn new(amqp_url: &str, prefix: &str) -> Vhost {
        let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        services(&["rabbitmq-vhost", "add", &name]);
        let base = amqp_url.rsplit_once('/').map_or(amqp_url, |(base, _)| base);
        Vhost {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        services(&["rabbitmq-vhost", "delete", &self.name]);
    }
}

/// The e-mail addresses of every account in the database at `url`.
pub async fn emails_in(url: &str) -> std::collections::BTreeSet<String> {
    use smap_identity::{adapters::postgres, ports::IdentityStore};
    postgres::PgIdentityStore::new(postgres::pool(url, 1).expect("pool"))
        .list_users(0, 1_000_000)
        .await
        .expect("users")
        .0
        .into_iter()
        .map(|u| u.email.as_str().to_owned())
        .collect()
}
