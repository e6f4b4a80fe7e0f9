//! Crash-safe e-mail and dead letters (issue 13) on the real servers: the
//! lease contract on Redis; the real binary killed (SIGKILL) or stopped
//! (SIGTERM) while an e-mail is inside a stalled SMTP conversation, then
//! restarted against a working sink; dead letters' properties and a dead
//! letter the broker cannot route; events nobody is bound for. Each test
//! runs on a RabbitMQ virtual host of its own.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fred::prelude::{Builder, ClientLike, Config, KeysInterface, Pool, ServerConfig};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher, ConsumerConfig, EmailConsumers},
        bus::topology::{EMAIL_BINDING, EMAIL_ERRORS_QUEUE, EMAIL_QUEUE, EVENTS_EXCHANGE},
        mail::templates::EmailTemplates,
        mail::{EmailHandler, MessageFormat},
        memory::{InMemoryDedup, InMemoryMailer, InMemoryPlanCatalog},
        redis::{RedisClients, RedisDedup},
        system::{RandomIds, SystemClock},
    },
    domain::{events::EventService, locale::Locale, mail_delivery::DeliveryService},
    ports::{Claim, DedupStore, Mailer},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use crate::{
    helpers::{PASSWORD, Remote},
    process::Service,
    real_amqp::verification,
    real_smtp::Sink,
    servers::{Vhost, amqp_url, free_port, redis},
};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A plain client on the cache database (DB 0), to look at the leases.
async fn raw_cache() -> Pool {
    let settings = redis().expect("REDIS_HOST");
    let config = Config {
        server: ServerConfig::new_centralized(settings.host, settings.port),
        database: Some(0),
        ..Config::default()
    };
    let pool = Builder::from_config(config).build_pool(1).expect("pool");
    pool.init().await.expect("raw client connects");
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_dedup_keeps_the_dedup_store_contract() {
    let Some(settings) = redis() else { return };
    let clients = RedisClients::connect(&settings).await.expect("clients");
    let store = RedisDedup::new(clients.cache.clone());
    smap_identity::ports::suites::dedup_store::run_all(Arc::new(store), &unique("lease")).await;
    clients.shutdown().await;
}

#[tokio::test]
async fn redis_leases_carry_their_owner_and_ttl_and_sent_keeps_seven_days() {
    let Some(settings) = redis() else { return };
    let clients = RedisClients::connect(&settings).await.expect("clients");
    let store = RedisDedup::new(clients.cache.clone());
    let raw = raw_cache().await;
    let key = format!("smap:email:sent:{}", unique("evt"));
    let lease = Duration::from_secs(57);

    store.claim(&key, "owner-a", lease).await.unwrap();
    let leased: String = raw.get(&key).await.unwrap();
    let lease_ms: i64 = raw.pttl(&key).await.unwrap();
    store
        .mark_sent(&key, "owner-a", Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    let sent: String = raw.get(&key).await.unwrap();
    let sent_secs: i64 = raw.ttl(&key).await.unwrap();
    // What versions before the lease wrote for a sent e-mail.
    let old = format!("smap:email:sent:{}", unique("old"));
    let _: () = raw
        .set(
            &old,
            "1",
            Some(fred::types::Expiration::EX(60)),
            None,
            false,
        )
        .await
        .unwrap();
    let old_claim = store.claim(&old, "owner-b", lease).await.unwrap();

    assert_eq!(leased, "sending:owner-a");
    assert!((56_000..=57_000).contains(&lease_ms), "{lease_ms} ms");
    assert_eq!(sent, "sent:owner-a");
    assert!(sent_secs > 7 * 24 * 3600 - 60, "{sent_secs} s");
    assert_eq!(old_claim, Claim::Sent, "an old `1` key stays sent");
    let _: i64 = raw.del(vec![key, old]).await.unwrap();
    clients.shutdown().await;
}

/// An SMTP server that takes everything up to the end of DATA and then
/// never answers: a mail server stalled with the e-mail inside the
/// conversation. Counts the messages it was given (never accepted).
struct StalledSmtp {
    port: u16,
    given: Arc<AtomicUsize>,
    message_ids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StalledSmtp {
    async fn start() -> StalledSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let given = Arc::new(AtomicUsize::new(0));
        let message_ids = Arc::new(Mutex::new(Vec::new()));
        let (g, ids) = (given.clone(), message_ids.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (g, ids) = (g.clone(), ids.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 stalled.test ESMTP\r\n").await;
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                // The whole e-mail is here: stall (no 250)
                                // until the client gives up or dies.
                                g.fetch_add(1, Ordering::SeqCst);
                                in_data = false;
                            } else if line.to_ascii_lowercase().starts_with("message-id:") {
                                ids.lock().unwrap().push(line);
                            }
                            continue;
                        }
                        let verb = line
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-stalled.test\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                in_data = true;
                                b"354 end with .\r\n"
                            }
                            "QUIT" => b"221 bye\r\n",
                            _ => b"250 OK\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        StalledSmtp {
            port,
            given,
            message_ids,
            task,
        }
    }

    /// Waits until the server holds an e-mail; its event id.
    async fn holding(&self, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        while self.given.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no e-mail reached the stalled server"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let header = self.message_ids.lock().unwrap()[0].clone();
        header
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(id, _)| id.to_owned())
            .expect("Message-ID: <evt_…@smap-identity>")
    }
}

impl Drop for StalledSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `Message-ID`s of the e-mails the aiosmtpd sink wrote.
fn delivered(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("new"))
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter_map(|mail| {
                    mail.lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn delivered_within(dir: &Path, wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    while delivered(dir).is_empty() {
        if started.elapsed() > wait {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(started.elapsed())
}

fn env<'a>(
    amqp: &'a str,
    redis_port: &'a str,
    smtp_port: &'a str,
    timeout: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AMQP_URL", amqp),
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", redis_port),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", smtp_port),
        ("SMTP_TLS", "none"),
        ("SMTP_TIMEOUT_SECS", timeout),
        ("RUST_LOG", "info"),
    ]
}

async fn register(service: &Service, email: &str) {
    let (status, body) = Remote::new(&service.base).register(email, PASSWORD).await;
    assert_eq!(status, 201, "{body}");
}

async fn dead_letter_count(amqp: &str) -> u32 {
    queue_depth(amqp, EMAIL_ERRORS_QUEUE).await
}

/// The messages ready in `queue` (not those delivered and unacked).
pub async fn queue_depth(amqp: &str, queue: &str) -> u32 {
    let connection = Connection::connect(amqp, ConnectionProperties::default())
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the queue exists");
    let _ = connection.close(200, "done".into()).await;
    declared.message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_inside_the_smtp_conversation_then_restart_sends_the_email_exactly_once() {
    let (Some(amqp), Some(redis_settings)) = (amqp_url(), redis()) else {
        return;
    };
    let vhost = Vhost::new(&amqp, "lease-kill");
    let stalled = StalledSmtp::start().await;
    let maildir = std::env::temp_dir().join(unique("smap-lease-kill"));
    let sink_port = free_port();
    let _sink = Sink::start(sink_port, &maildir).expect("aiosmtpd (scripts/services.sh install)");
    let raw = raw_cache().await;
    let redis_port = redis_settings.port.to_string();
    let (stalled_port, sink_port) = (stalled.port.to_string(), sink_port.to_string());
    // 1 s per SMTP try: the lease is 4 × 1 s + 7 s of backoff + 10 s = 21 s.
    let first = Service::start(&env(&vhost.url, &redis_port, &stalled_port, "1")).await;

    register(&first, "killed-mid-send@example.com").await;
    let event_id = stalled.holding(Duration::from_secs(15)).await;
    drop(first); // SIGKILL, with the e-mail inside the SMTP conversation
    let killed = Instant::now();
    let key = format!("smap:email:sent:{event_id}");
    let left_behind: Option<String> = raw.get(&key).await.unwrap();
    let lease_left_ms: i64 = raw.pttl(&key).await.unwrap();

    let second = Service::start(&env(&vhost.url, &redis_port, &sink_port, "1")).await;
    let restarted = killed.elapsed();
    let took = delivered_within(&maildir, Duration::from_secs(40)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = delivered(&maildir);
    let marked: Option<String> = raw.get(&key).await.unwrap();
    let dead = dead_letter_count(&vhost.url).await;
    let waited = second
        .lines()
        .iter()
        .any(|l| l.contains("holds its lease; waiting for it"));
    let (_, _) = second.stop().await;
    eprintln!(
        "SIGKILL mid-send: lease left behind {left_behind:?} with {lease_left_ms} ms to go; \
         restarted {restarted:?} after the kill; delivered {took:?} after the restart; \
         {} e-mail(s), {dead} dead letter(s)",
        mails.len()
    );

    assert!(
        left_behind
            .as_deref()
            .is_some_and(|v| v.starts_with("sending:")),
        "the killed process left its lease: {left_behind:?}"
    );
    assert!(took.is_some(), "the e-mail arrived after the restart");
    assert_eq!(mails.len(), 1, "exactly once: {mails:?}");
    assert!(mails[0].contains(&event_id), "{mails:?}");
    assert!(waited, "the redelivery waited for the dead owner's lease");
    assert!(
        marked.as_deref().is_some_and(|v| v.starts_with("sent:")),
        "{marked:?}"
    );
    assert_eq!(dead, 0, "nothing dead-lettered");
    let _: i64 = raw.del(key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_off_a_stalled_send_releases_its_lease_and_the_restart_sends_at_once() {
    let (Some(amqp), Some(redis_settings)) = (amqp_url(), redis()) else {
        return;
    };
    let vhost = Vhost::new(&amqp, "lease-term");
    let stalled = StalledSmtp::start().await;
    let maildir = std::env::temp_dir().join(unique("smap-lease-term"));
    let sink_port = free_port();
    let _sink = Sink::start(sink_port, &maildir).expect("aiosmtpd (scripts/services.sh install)");
    let raw = raw_cache().await;
    let redis_port = redis_settings.port.to_string();
    let (stalled_port, sink_port) = (stalled.port.to_string(), sink_port.to_string());
    // 3 s per SMTP try: one delivery can last 4 × 3 s + 7 s = 19 s, longer
    // than the 10 s drain; the lease is 29 s.
    let first = Service::start(&env(&vhost.url, &redis_port, &stalled_port, "3")).await;

    register(&first, "stopped-mid-send@example.com").await;
    let event_id = stalled.holding(Duration::from_secs(15)).await;
    let (stop_took, lines) = first.stop().await;
    let key = format!("smap:email:sent:{event_id}");
    let after_stop: Option<String> = raw.get(&key).await.unwrap();
    let cut_off = lines
        .iter()
        .find(|l| l.contains("cut off and requeued"))
        .cloned();

    let second = Service::start(&env(&vhost.url, &redis_port, &sink_port, "3")).await;
    let took = delivered_within(&maildir, Duration::from_secs(40)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = delivered(&maildir);
    let dead = dead_letter_count(&vhost.url).await;
    let _ = second.stop().await;
    eprintln!(
        "SIGTERM mid-send: stopped in {stop_took:?}; key after the stop {after_stop:?}; \
         delivered {took:?} after the restart; {} e-mail(s), {} tries at the stalled server, \
         {dead} dead letter(s)",
        mails.len(),
        stalled.given.load(Ordering::SeqCst)
    );

    assert!(
        stop_took < Duration::from_secs(14),
        "10 s drain, then cut off: {stop_took:?}"
    );
    assert!(
        cut_off.as_deref().is_some_and(|l| l.contains("released")),
        "{lines:#?}"
    );
    assert_eq!(after_stop, None, "the abandoned lease was released");
    let took = took.expect("the e-mail arrived after the restart");
    assert!(
        took < Duration::from_secs(10),
        "sent at once, not after the 29 s lease: {took:?}"
    );
    assert_eq!(mails.len(), 1, "exactly once: {mails:?}");
    assert_eq!(dead, 0, "nothing dead-lettered");
    let _: i64 = raw.del(key).await.unwrap();
}

/// E-mail consumers of this process on `url` (in-memory mailer and leases).
async fn consumers(url: &str) -> (AmqpBroker, EmailConsumers) {
    let broker = AmqpBroker::connect(url, AmqpConfig::default()).await;
    let config = ConsumerConfig {
        prefetch: 4,
        concurrency: 4,
        drain_timeout: Duration::from_secs(2),
    };
    let mailer = Arc::new(InMemoryMailer::new());
    let consumers = envelope_consumers(&broker, mailer, Arc::new(InMemoryDedup::new()), config);
    (broker, consumers)
}

/// The consumers of `smtp_send_email_v2` on `broker`, the real handler
/// sending through `mailer` with `dedup`.
pub fn envelope_consumers(
    broker: &AmqpBroker,
    mailer: Arc<dyn Mailer>,
    dedup: Arc<dyn DedupStore>,
    config: ConsumerConfig,
) -> EmailConsumers {
    let delivery = DeliveryService::new(mailer, dedup, Arc::new(RandomIds));
    let handler = Arc::new(EmailHandler::new(
        Arc::new(EmailTemplates::new().unwrap()),
        Arc::new(delivery),
        Arc::new(SystemClock),
    ));
    EmailConsumers::start(
        broker.clone(),
        handler,
        vec![(EMAIL_QUEUE, MessageFormat::Envelope)],
        config,
        Arc::new(SystemClock),
        tokio_util::sync::CancellationToken::new(),
    )
}

/// The value of one metric series in this process's registry (0 if absent).
fn metric(series: &str) -> f64 {
    let text = smap_identity::app::http::metrics::prometheus()
        .expect("the test process's recorder")
        .render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_persistent_typed_and_identified_and_an_unroutable_one_is_requeued() {
    let Some(amqp) = amqp_url() else { return };
    let _ = smap_identity::app::http::metrics::prometheus();
    let vhost = Vhost::new(&amqp, "dead-letters");
    let (broker, running) = consumers(&vhost.url).await;
    let connection = Connection::connect(&vhost.url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let publish = |id: Option<&'static str>| {
        let channel = channel.clone();
        async move {
            // Transient, no timestamp: what a legacy producer may send.
            let mut properties = BasicProperties::default().with_delivery_mode(1);
            if let Some(id) = id {
                properties = properties.with_message_id(id.into());
            }
            channel
                .basic_publish(
                    "".into(),
                    EMAIL_QUEUE.into(),
                    BasicPublishOptions::default(),
                    b"not json",
                    properties,
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let get = |queue: &'static str| {
        let channel = channel.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(m) = channel
                    .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                    .await
                    .unwrap()
                {
                    return Some(m.delivery);
                }
                if Instant::now() > deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // A message with no id and no timestamp, transient.
    publish(None).await;
    let dead = get(EMAIL_ERRORS_QUEUE).await.expect("dead-lettered");
    let p = &dead.properties;
    let headers = p.headers().clone().unwrap();
    let header = |k: &str| headers.inner().get(k).cloned();
    let id = p
        .message_id()
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();

    assert_eq!(header("x-retry-count"), Some(AMQPValue::LongLongInt(0)));
    assert_eq!(*p.delivery_mode(), Some(2), "persistent");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a new id: {id:?}");
    assert_eq!(
        header("message_id"),
        Some(AMQPValue::LongString(id.as_str().into()))
    );
    assert!(p.timestamp().is_some_and(|t| t > 1_700_000_000), "{p:?}");

    // email.errors gone: the broker returns the dead letter, and the
    // original goes back to its queue, never acked and lost.
    let unpublished = format!(
        "email_consumer_errors_total{{queue=\"{EMAIL_QUEUE}\",kind=\"dead_letter_unpublished\"}}"
    );
    let before = metric(&unpublished);
    channel
        .queue_delete(EMAIL_ERRORS_QUEUE.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    publish(Some("orphan-1")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await;
    let returned = metric(&unpublished) - before;
    let waiting = channel
        .queue_declare(
            EMAIL_QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count();
    broker.close().await;

    // The queue back (as `events declare` or a reconnect declares it): the
    // requeued message is dead-lettered at last.
    let (broker, running) = consumers(&vhost.url).await;
    let recovered = get(EMAIL_ERRORS_QUEUE).await;
    running.stop().await;
    broker.close().await;
    eprintln!(
        "unroutable dead letter: returned {returned} time(s) in 3 s, {waiting} message(s) left in \
         {EMAIL_QUEUE}, dead-lettered once email.errors was back: {}",
        recovered.is_some()
    );

    assert!(returned >= 1.0, "the return counted as a failure");
    assert_eq!(waiting, 1, "the original was requeued, not acked");
    let recovered = recovered.expect("dead-lettered once the queue is back");
    assert_eq!(
        recovered
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("orphan-1")
    );
}

#[tokio::test]
async fn an_event_no_queue_is_bound_for_is_published_counted_and_logged() {
    let Some(amqp) = amqp_url() else { return };
    let _ = smap_identity::app::http::metrics::prometheus();
    let vhost = Vhost::new(&amqp, "unroutable");
    let broker = AmqpBroker::connect(&vhost.url, AmqpConfig::default()).await;
    let events = EventService::new(
        Arc::new(AmqpEventPublisher::new(broker.clone())),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    );
    let channel = broker.admin_channel().await.unwrap();
    let series = "events_unroutable_total{routing_key=\"email.verification.requested\"}";
    channel
        .queue_unbind(
            EMAIL_QUEUE.into(),
            EVENTS_EXCHANGE.into(),
            EMAIL_BINDING.into(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let before = metric(series);
    for _ in 0..3 {
        events
            .publish(verification(Locale::En))
            .await
            .expect("an unroutable event is still published");
    }
    let unbound = metric(series) - before;
    channel
        .queue_bind(
            EMAIL_QUEUE.into(),
            EVENTS_EXCHANGE.into(),
            EMAIL_BINDING.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let before = metric(series);
    events.publish(verification(Locale::En)).await.unwrap();
    let bound = metric(series) - before;
    broker.close().await;
    eprintln!("unroutable events: {unbound} counted for 3 unbound, {bound} for 1 bound");

    assert_eq!(unbound, 3.0);
    assert_eq!(bound, 0.0);
}

/// The recipient (`To:`) of each e-mail the aiosmtpd sink wrote, one entry
/// per e-mail.
pub fn recipients(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("new"))
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter_map(|mail| {
                    mail.lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                        .map(|l| l[3..].trim().trim_matches(['<', '>']).to_ascii_lowercase())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What one client saw of its registrations.
#[derive(Default)]
struct Answers {
    created: Vec<String>,
    /// Sent, but the process died before answering.
    lost: Vec<String>,
    other: Vec<(String, u16)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_registration_load_then_restart_every_account_gets_its_email_once() {
    let (Some(amqp), Some(redis_settings), Some(db)) =
        (amqp_url(), redis(), crate::servers::fresh_database().await)
    else {
        return;
    };
    let vhost = Vhost::new(&amqp, "kill-load");
    let maildir = std::env::temp_dir().join(unique("smap-kill-load"));
    let sink_port = free_port();
    let _sink = Sink::start(sink_port, &maildir).expect("aiosmtpd (scripts/services.sh install)");
    let (redis_port, sink_port) = (redis_settings.port.to_string(), sink_port.to_string());
    let mut vars = env(&vhost.url, &redis_port, &sink_port, "1");
    vars.push(("DATABASE_URL", &db));
    let first = Service::start(&vars).await;
    let base = first.base.clone();

    // Arrange: 4 clients register without pause until the process is gone.
    const CLIENTS: usize = 4;
    let killed = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let base = base.clone();
            let killed = killed.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .expect("client");
                let api = Remote::with_client(&base, http);
                let mut seen = Answers::default();
                for i in 0.. {
                    let email = format!("load-{c}-{i}@example.com");
                    match api.try_register(&email, PASSWORD).await {
                        Ok(201) => seen.created.push(email),
                        Ok(status) => seen.other.push((email, status)),
                        // The request in flight at the kill: its answer
                        // is lost; the account may or may not exist.
                        Err(_) => {
                            seen.lost.push(email);
                            if killed.load(Ordering::SeqCst) {
                                break;
                            }
                        }
                    }
                }
                seen
            })
        })
        .collect();

    // Act: SIGKILL once some registrations went through, mid-stream.
    let started = Instant::now();
    while recipients(&maildir).len() < 30 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Flagged first: a client whose request fails after this point lost
    // that request's answer and stops.
    killed.store(true, Ordering::SeqCst);
    drop(first); // SIGKILL
    let mut answers = Answers::default();
    for client in clients {
        let seen = client.await.expect("client");
        answers.created.extend(seen.created);
        answers.lost.extend(seen.lost);
        answers.other.extend(seen.other);
    }
    let at_kill = recipients(&maildir).len();
    let second = Service::start(&vars).await;
    let users = crate::servers::emails_in(&db).await;
    // Every stored account's e-mail; a lease the dead process held delays
    // its e-mail by up to 21 s (4 tries of 1 s, 7 s of backoff, 10 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::BTreeSet<String> = recipients(&maildir).into_iter().collect();
        if users.iter().all(|u| got.contains(u)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late copies (a redelivery after a lease) would show up by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = recipients(&maildir);
    let (_, _) = second.stop().await;

    // Assert
    let mut per_user = std::collections::BTreeMap::<String, usize>::new();
    for to in &mails {
        *per_user.entry(to.clone()).or_default() += 1;
    }
    let lost_but_stored = answers.lost.iter().filter(|e| users.contains(*e)).count();
    let duplicates: usize = per_user.values().map(|n| n - 1).sum();
    eprintln!(
        "SIGKILL under load: {} × 201, {} answers lost ({lost_but_stored} of them stored), {} other; \
         {} accounts stored; {at_kill} e-mails before the kill, {} after the restart; \
         {} accounts with an e-mail, {duplicates} duplicate(s)",
        answers.created.len(),
        answers.lost.len(),
        answers.other.len(),
        users.len(),
        mails.len(),
        per_user.len()
    );
    assert!(answers.created.len() >= 30, "the load ran before the kill");
    assert!(
        answers.lost.len() <= CLIENTS,
        "one lost answer per client at most"
    );
    assert!(answers.other.is_empty(), "{:?}", answers.other);
    for email in &answers.created {
        assert!(users.contains(email), "a 201 without its account: {email}");
    }
    for user in &users {
        assert!(
            per_user.contains_key(user),
            "an account without its e-mail: {user}"
        );
    }
    for to in per_user.keys() {
        assert!(
            users.contains(to),
            "an e-mail for an account that does not exist: {to}"
        );
    }
    // Only the e-mails inside an SMTP conversation at the kill can go twice:
    // at most the consumers' concurrency (EMAIL_CONCURRENCY, 16) per queue.
    assert!(duplicates <= 16, "{duplicates} duplicates");
    let _ = std::fs::remove_dir_all(&maildir);
}
