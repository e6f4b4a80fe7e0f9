//! `spawn_app`: a fresh application per test, plus request shortcuts.

use std::sync::{Arc, Once};

use chrono::Utc;
use reqwest::{Client, Response};
use secrecy::ExposeSecret;
use serde_json::Value;
use smap_identity::{
    adapters::{
        bus::topology::EVENTS_EXCHANGE,
        memory::ManualClock,
        memory::{Delivery, InMemoryBroker},
        system::RandomIds,
    },
    app::{config::Settings, startup::Application, wiring::Adapters},
    domain::{
        account::Role as DomainRole,
        email_address::Email,
        events::{EventData, EventEnvelope},
    },
    ports::IdentityStore,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod process_env;
mod remote;

pub use process_env::{ServersWithSink, production_base};
pub use remote::{PASSWORD, Remote};

/// A queue each test app binds to `job.#`, to observe `job.completed`.
pub const JOBS_QUEUE: &str = "test.jobs";
/// And one bound to `subscription.#`.
pub const SUBSCRIPTIONS_QUEUE: &str = "test.subscriptions";
/// And one bound to `email.#` (the consumers read `smtp_send_email_v2`).
pub const EMAILS_QUEUE: &str = "test.emails";

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub internal_key: String,
    pub broker: Arc<InMemoryBroker>,
    pub identity: Arc<dyn IdentityStore>,
    pub clock: Arc<ManualClock>,
    /// Cancelling it stops the app as SIGTERM would.
    shutdown: CancellationToken,
    /// The app's run, ending once it has stopped.
    running: tokio::sync::Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Trace contexts always (messages carry them); `TEST_LOG=1 cargo test`
        // also shows the service's logs.
        let telemetry = if std::env::var_os("TEST_LOG").is_some() {
            let mut settings = Settings::for_tests();
            settings.rust_log = "debug".into();
            smap_identity::app::telemetry::init(&settings).expect("no exporter configured")
        } else {
            smap_identity::app::telemetry::init_silent()
        };
        // The process-wide tracer lives as long as the test binary.
        std::mem::forget(telemetry);
    });
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A test app whose adapters `customize` may replace first.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Adapters)) -> TestApp {
    spawn(|_| {}, customize).await
}

/// A test app with adapters chosen from settings that `configure` adjusts
/// (servers named there are really used).
pub async fn spawn_app_with_settings(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(configure, |_| {}).await
}

/// A test app with both settings and adapters adjusted.
pub async fn spawn_app_configured(
    configure: impl FnOnce(&mut Settings),
    customize: impl FnOnce(&mut Adapters),
) -> TestApp {
    spawn(configure, customize).await
}

async fn spawn(
    configure: impl FnOnce(&mut Settings),
    customize: impl FnOnce(&mut Adapters),
) -> TestApp {
    init_logs();
    let mut settings = Settings::for_tests();
    configure(&mut settings);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut adapters = Adapters::in_memory(&settings, clock.clone(), Arc::new(RandomIds));
    adapters
        .use_configured_mailer(&settings)
        .expect("SMTP settings");
    let broker = adapters
        .memory_broker
        .clone()
        .expect("in-memory adapters have a broker");
    let identity = adapters.identity.clone();
    broker.declare_queue(JOBS_QUEUE);
    broker
        .bind(JOBS_QUEUE, EVENTS_EXCHANGE, "job.#")
        .expect("bind test queue");
    broker.declare_queue(EMAILS_QUEUE);
    broker
        .bind(EMAILS_QUEUE, EVENTS_EXCHANGE, "email.#")
        .expect("bind test queue");
    broker.declare_queue(SUBSCRIPTIONS_QUEUE);
    broker
        .bind(SUBSCRIPTIONS_QUEUE, EVENTS_EXCHANGE, "subscription.#")
        .expect("bind test queue");
    let mut adapters = adapters;
    customize(&mut adapters);
    let app = Application::build_with(&settings, adapters).expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let running = tokio::sync::Mutex::new(Some(tokio::spawn(app.run_until_stopped())));
    TestApp {
        address,
        client: Client::new(),
        internal_key: settings.internal_key.expose_secret().to_owned(),
        broker,
        identity,
        clock,
        shutdown,
        running,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The token of a new signed-in user (a real session).
    pub async fn user_token(&self) -> String {
        self.signed_up(&format!("reader-{}@example.com", Uuid::new_v4().simple()))
            .await
    }

    pub async fn init_project(&self, id: &str) -> Response {
        self.client
            .post(self.url(&format!("/internal/projects/{id}/progress")))
            .header("X-Internal-Key", &self.internal_key)
            .send()
            .await
            .expect("request")
    }

    pub async fn set_total(&self, id: &str, body: Value) -> Response {
        self.client
            .put(self.url(&format!("/internal/projects/{id}/progress")))
            .header("X-Internal-Key", &self.internal_key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn mark_item(&self, id: &str, body: Value) -> Response {
        self.client
            .post(self.url(&format!("/internal/projects/{id}/progress/items")))
            .header("X-Internal-Key", &self.internal_key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_progress_internal(&self, id: &str) -> Response {
        self.client
            .get(self.url(&format!("/projects/{id}/progress")))
            .header("X-Internal-Key", &self.internal_key)
            .send()
            .await
            .expect("request")
    }

    /// Every `job.completed` message published so far, drained.
    pub fn take_job_events(&self) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Some(d) = self.broker.try_take(JOBS_QUEUE).expect("queue exists") {
            out.push(d);
        }
        out
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Waits (bounded) until the outbox relay published every row written
    /// so far: events leave through the outbox (`EVENT_DELIVERY=outbox`, the
    /// default), a moment after the request that wrote them.
    pub async fn settle(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let backlog = self
                .identity
                .outbox_backlog()
                .await
                .expect("outbox backlog");
            if backlog.pending == 0 || std::time::Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Every envelope in `queue`, drained once the outbox is empty.
    pub async fn drain(&self, queue: &str) -> Vec<EventEnvelope> {
        self.settle().await;
        self.drain_now(queue)
    }

    /// Every envelope in `queue` right now, without waiting for the outbox.
    pub fn drain_now(&self, queue: &str) -> Vec<EventEnvelope> {
        let mut out = Vec::new();
        while let Some(d) = self.broker.try_take(queue).expect("queue exists") {
            out.push(EventEnvelope::from_json(&d.body).expect("a valid envelope"));
        }
        out
    }

    /// The OTP of the newest verification e-mail to `email`.
    pub async fn otp_for(&self, email: &str) -> String {
        self.drain(EMAILS_QUEUE)
            .await
            .into_iter()
            .rev()
            .find_map(|e| match e.data {
                EventData::EmailVerificationRequested(p) if p.recipient.as_str() == email => {
                    Some(p.otp_code.as_str().to_owned())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no verification e-mail for {email}"))
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/authentication/register",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// `POST /authentication/register` with a locale (`vi`, `en`).
    pub async fn register_in(&self, email: &str, password: &str, locale: &str) -> Response {
        let body = serde_json::json!({"email": email, "password": password, "locale": locale});
        self.post_json("/authentication/register", &body).await
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let answer = self.client.get(self.url("/metrics")).send().await;
        answer.expect("request").text().await.expect("a text body")
    }

    /// Registers, verifies and logs in; returns the bearer token.
    pub async fn signed_up(&self, email: &str) -> String {
        let password = "correct horse battery";
        assert_eq!(self.register(email, password).await.status().as_u16(), 201);
        self.verified(email).await;
        self.log_in(email).await
    }

    /// Verifies the account with the OTP of its last e-mail.
    async fn verified(&self, email: &str) {
        let otp = self.otp_for(email).await;
        let verified = self
            .post_json(
                "/authentication/verify-otp",
                &serde_json::json!({"email": email, "otp": otp}),
            )
            .await;
        assert_eq!(verified.status().as_u16(), 200);
    }

    /// A new session's token for an account signed up with `signed_up`.
    pub async fn log_in(&self, email: &str) -> String {
        let (_, body) = json(
            self.post_json(
                "/authentication/login",
                &serde_json::json!({"email": email, "password": "correct horse battery"}),
            )
            .await,
        )
        .await;
        body["data"]["token"].as_str().expect("a token").to_owned()
    }

    /// Makes the account an admin (what `smap-identity admin grant` does).
    pub async fn make_admin(&self, email: &str) {
        let email = Email::parse(email).expect("email");
        self.identity
            .set_role(&email, DomainRole::Admin, Utc::now())
            .await
            .expect("set role");
    }

    /// Stops the app gracefully and waits until it has stopped.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.lock().await.take() {
            let _ = running.await;
        }
    }
}

/// Status and parsed JSON body.
pub async fn json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// Wraps a real publisher; while `down` is set, every publish fails as a
/// broker outage would.
pub struct Switchable {
    pub inner: Arc<dyn smap_identity::ports::EventPublisher>,
    pub down: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl smap_identity::ports::EventPublisher for Switchable {
    async fn publish(
        &self,
        event: &smap_identity::domain::events::SealedEvent,
    ) -> Result<smap_identity::domain::events::EventId, smap_identity::ports::PublishError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(smap_identity::ports::PublishError::Unavailable(
                anyhow::anyhow!("broker down (test)"),
            ));
        }
        self.inner.publish(event).await
    }
}
