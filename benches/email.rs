//! E-mail throughput: a full `smtp_send_email_v2` queue drained by the
//! RabbitMQ consumers (de-duplication on Redis) into a local SMTP sink, next
//! to the two ceilings measured in the same run and round:
//!
//! - AMQP: bare lapin consume + ack of the same messages, same prefetch;
//! - SMTP: our SMTP client alone sending the same e-mails, pre-rendered, to
//!   the same sink, as many at a time as the consumers.
//!
//! Two sinks: Postfix's `smtp-sink` (C, made for SMTP benchmarks: it shows
//! the client's limit) and aiosmtpd writing a Maildir (Python: the sink is
//! the limit, kept as a second row for comparison with older figures).
//! Rounds interleave the rows, so a neighbour's load shows in all of them.
//!
//! Run: `scripts/bench.sh --bench email` (`BENCH_EMAIL_N`, `BENCH_EMAIL_ROUNDS`,
//! `BENCH_EMAIL_SINKS=smtp-sink,aiosmtpd`, `BENCH_EMAIL_CONCURRENCY`,
//! `BENCH_EMAIL_PREFETCH` and `BENCH_EMAIL_WORKERS` change the defaults;
//! `BENCH_EMAIL_MULTI_ACK=16` adds a bare-lapin row with batched acks).

// The library's limit of 60 lines a function (clippy.toml) holds here too:
// a benchmark reads as named steps, each short enough to check by eye.
#![warn(clippy::too_many_lines)]

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{Duration as Span, Utc};
use futures_util::{StreamExt, stream};
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueuePurgeOptions},
    types::FieldTable,
};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher, ConsumerConfig, EmailConsumers},
        bus::topology::EMAIL_QUEUE,
        mail::templates::EmailTemplates,
        mail::{EmailHandler, MessageFormat, SmtpConfig, SmtpMailer, SmtpTls},
        redis::{RedisClients, RedisDedup},
        system::{RandomIds, SystemClock},
    },
    domain::{
        email_address::Email,
        events::{EmailVerificationPayload, EventData, EventService},
        locale::Locale,
        mail_delivery::DeliveryService,
        otp::OtpCode,
        timestamp::Timestamp,
    },
    ports::{MailError, Mailer, OutgoingEmail},
    test_support::{free_port, spawn_aiosmtpd, wait_listening},
};
use uuid::Uuid;

mod support;

/// The consumer's defaults (`EMAIL_CONCURRENCY`, `EMAIL_PREFETCH`);
/// `BENCH_EMAIL_CONCURRENCY` and `BENCH_EMAIL_PREFETCH` try others.
const CONCURRENCY: usize = 16;
const PREFETCH: u16 = 32;

fn concurrency() -> usize {
    env_or("BENCH_EMAIL_CONCURRENCY", CONCURRENCY)
}

fn prefetch() -> u16 {
    env_or("BENCH_EMAIL_PREFETCH", PREFETCH)
}

/// `BENCH_EMAIL_MULTI_ACK=16` adds a bare-lapin row acking every 16th
/// delivery with `multiple` set (at most the prefetch).
fn multi_ack() -> Option<usize> {
    let every: usize = env_or("BENCH_EMAIL_MULTI_ACK", 0);
    (every > 0).then(|| every.min(usize::from(prefetch())))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) a process has used so far, in clock ticks
/// (1/100 s on Linux), from /proc; 0 if it is not readable.
fn cpu_ticks(pid: u32) -> u64 {
    stat_ticks(format!("/proc/{pid}/stat"))
}

/// User + system ticks from a `stat` file of /proc; 0 if not readable.
fn stat_ticks(path: impl AsRef<std::path::Path>) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which may hold spaces.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU ticks of this process's threads, summed by thread name (tokio's
/// workers, lapin's I/O thread, the main thread…), from /proc.
fn thread_ticks() -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // Numbered names (`lapin-io-3`) count as one.
        let name = comm
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        let ticks = stat_ticks(task.path().join("stat"));
        *by_name.entry(name.to_owned()).or_insert(0) += ticks;
    }
    by_name
}

/// The processes whose CPU time the consumer rows report: this one, the
/// sink, and `BENCH_EMAIL_PIDS` (`rabbitmq=PID,redis=PID`).
fn watched(sink: &Sink) -> Vec<(String, u32)> {
    let mut pids = vec![
        ("consumers".to_owned(), std::process::id()),
        (sink.name.to_owned(), sink.child.id()),
    ];
    if let Ok(list) = std::env::var("BENCH_EMAIL_PIDS") {
        for entry in list.split(',') {
            if let Some((name, pid)) = entry.split_once('=')
                && let Ok(pid) = pid.trim().parse()
            {
                pids.push((name.trim().to_owned(), pid));
            }
        }
    }
    pids
}

struct Sink {
    name: &'static str,
    port: u16,
    child: Child,
}

impl Sink {
    fn start(name: &'static str) -> Self {
        let port = free_port();
        let child = match name {
            // Throws every message away; 1024 is its listen backlog. As
            // root it must drop to another user.
            "smtp-sink" => Command::new("smtp-sink")
                .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "1024"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("smtp-sink (scripts/bench.sh installs postfix)"),
            _ => {
                let dir = std::env::temp_dir()
                    .join(format!("smap-bench-mail-{}", Uuid::new_v4().simple()));
                spawn_aiosmtpd(port, &dir).expect("aiosmtpd (scripts/services.sh install)")
            }
        };
        assert!(
            wait_listening(port, Duration::from_secs(30)),
            "{name} did not listen on {port}"
        );
        Self { name, port, child }
    }

    fn settings(&self) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "SMAP <no-reply@smap.test>".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts the e-mails the server accepted (its answer to the final `.`).
struct Counting {
    inner: SmtpMailer,
    sent: Arc<AtomicUsize>,
}

#[async_trait]
impl Mailer for Counting {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        self.inner.send(email).await?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn payload(i: usize, prefix: &str) -> EmailVerificationPayload {
    EmailVerificationPayload {
        user_id: Uuid::new_v4(),
        recipient: Email::parse(&format!("{prefix}{i}@example.com")).unwrap(),
        otp_code: OtpCode::from_number(i as u32),
        locale: Locale::Vi,
        expires_at: Timestamp::new(Utc::now() + Span::minutes(10)),
    }
}

struct Rig {
    broker: AmqpBroker,
    events: EventService,
    templates: Arc<EmailTemplates>,
    redis: RedisClients,
}

impl Rig {
    /// Empties the queue, then fills it with `n` fresh events.
    async fn fill(&self, n: usize) {
        let admin = self.broker.admin_channel().await.unwrap();
        admin
            .queue_purge(EMAIL_QUEUE.into(), QueuePurgeOptions::default())
            .await
            .unwrap();
        let tag = Uuid::new_v4().simple().to_string();
        stream::iter(0..n)
            .map(|i| {
                let data = EventData::EmailVerificationRequested(payload(i, &tag));
                async move { self.events.publish(data).await.unwrap() }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        let _ = admin.close(200, "filled".into()).await;
    }

    /// Ceiling 1: bare lapin, consume and ack each message, same prefetch.
    async fn amqp_ceiling(&self, n: usize) -> f64 {
        self.amqp_consume(n, 1).await
    }

    /// Bare lapin consuming `n` messages and acking every `every`-th with
    /// `multiple` set (and the last): what batching acks could save at most.
    async fn amqp_consume(&self, n: usize, every: usize) -> f64 {
        self.fill(n).await;
        let channel = self.broker.admin_channel().await.unwrap();
        channel
            .basic_qos(prefetch(), BasicQosOptions::default())
            .await
            .unwrap();
        let started = Instant::now();
        let mut deliveries = channel
            .basic_consume(
                EMAIL_QUEUE.into(),
                "bench-bare".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for i in 1..=n {
            let delivery = deliveries.next().await.unwrap().unwrap();
            if i % every == 0 || i == n {
                let multiple = every > 1;
                delivery.ack(BasicAckOptions { multiple }).await.unwrap();
            }
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        let _ = channel.close(200, "done".into()).await;
        rate
    }

    /// Ceiling 2: the SMTP client alone, pre-rendered e-mails.
    async fn smtp_ceiling(&self, sink: &Sink, n: usize) -> f64 {
        let mailer = Arc::new(
            SmtpMailer::new(&sink.settings())
                .unwrap()
                .with_pool_size(concurrency()),
        );
        let emails: Vec<OutgoingEmail> = (0..n)
            .map(|i| {
                let p = payload(i, "plain");
                let r = self
                    .templates
                    .render_verification(&p, Timestamp::new(Utc::now()))
                    .unwrap();
                OutgoingEmail {
                    message_id: format!("plain-{i}"),
                    to: p.recipient.to_string(),
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
                let mailer = mailer.clone();
                async move { mailer.send(e).await.unwrap() }
            })
            .buffer_unordered(concurrency())
            .collect::<Vec<_>>()
            .await;
        n as f64 / started.elapsed().as_secs_f64()
    }

    /// Ours: `smap-identity consume`'s consumers, de-duplication on Redis.
    /// Also prints the CPU each watched process spent per e-mail.
    async fn consumers(&self, sink: &Sink, n: usize) -> f64 {
        self.fill(n).await;
        let sent = Arc::new(AtomicUsize::new(0));
        let mailer = Counting {
            inner: SmtpMailer::new(&sink.settings())
                .unwrap()
                .with_pool_size(concurrency()),
            sent: sent.clone(),
        };
        let delivery = Arc::new(DeliveryService::new(
            Arc::new(mailer),
            Arc::new(RedisDedup::new(self.redis.cache.clone())),
            Arc::new(RandomIds),
        ));
        let handler = Arc::new(EmailHandler::new(
            self.templates.clone(),
            delivery,
            Arc::new(SystemClock),
        ));
        let cpu = CpuWatch::start(sink);
        let started = Instant::now();
        let consumers = EmailConsumers::start(
            self.broker.clone(),
            handler,
            vec![(EMAIL_QUEUE, MessageFormat::Envelope)],
            ConsumerConfig {
                prefetch: prefetch(),
                concurrency: concurrency(),
                drain_timeout: Duration::from_secs(10),
            },
            Arc::new(SystemClock),
            tokio_util::sync::CancellationToken::new(),
        );
        while sent.load(Ordering::Relaxed) < n && started.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        let rate = sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
        cpu.report(n, elapsed);
        consumers.stop().await;
        rate
    }
}

/// The CPU of the watched processes, and of this process's threads by
/// name, from its start to its report.
struct CpuWatch {
    watched: Vec<(String, u32)>,
    before: Vec<u64>,
    threads_before: std::collections::BTreeMap<String, u64>,
}

impl CpuWatch {
    fn start(sink: &Sink) -> Self {
        let watched = watched(sink);
        let threads_before = thread_ticks();
        let before = watched.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
        Self {
            watched,
            before,
            threads_before,
        }
    }

    /// Prints the CPU each spent per e-mail over `n` e-mails.
    fn report(&self, n: usize, elapsed: Duration) {
        // Ticks are 10 ms: µs per e-mail = ticks × 10 000 / n.
        let per_email = |ticks: u64| ticks as f64 * 10_000.0 / n as f64;
        let cpu: Vec<String> = self
            .watched
            .iter()
            .zip(&self.before)
            .map(|((name, pid), before)| {
                let ticks = cpu_ticks(*pid).saturating_sub(*before);
                format!(
                    "{name} {:.0} µs ({:.0} % of a core)",
                    per_email(ticks),
                    ticks as f64 / 100.0 / elapsed.as_secs_f64() * 100.0
                )
            })
            .collect();
        eprintln!("  CPU per e-mail: {}", cpu.join(", "));
        let threads: Vec<String> = thread_ticks()
            .into_iter()
            .map(|(name, ticks)| {
                let before = self.threads_before.get(&name).copied().unwrap_or(0);
                (name, ticks.saturating_sub(before))
            })
            .filter(|(_, spent)| *spent > 0)
            .map(|(name, spent)| format!("{name} {:.0} µs", per_email(spent)))
            .collect();
        eprintln!("  the consumers' process by thread: {}", threads.join(", "));
    }
}

fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    if (max - min) < 0.5 {
        format!("{min:.0}")
    } else {
        format!("{min:.0}–{max:.0}")
    }
}

fn main() {
    // `BENCH_EMAIL_WORKERS` sets the runtime's worker threads (tokio's
    // default: one per core).
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("BENCH_EMAIL_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
    {
        runtime.worker_threads(workers);
    }
    runtime
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    let amqp = support::env("AMQP_URL");
    let redis = support::redis();
    let n: usize = env_or("BENCH_EMAIL_N", 20_000);
    let rounds: usize = env_or("BENCH_EMAIL_ROUNDS", 3);
    let sinks: String = env_or("BENCH_EMAIL_SINKS", "smtp-sink,aiosmtpd".to_owned());
    let broker = AmqpBroker::connect(&amqp, AmqpConfig::default()).await;
    let rig = Rig {
        events: support::event_service(Arc::new(AmqpEventPublisher::new(broker.clone()))),
        broker: broker.clone(),
        templates: Arc::new(EmailTemplates::new().unwrap()),
        redis: RedisClients::connect(&redis).await.unwrap(),
    };
    let sinks: Vec<Sink> = sinks
        .split(',')
        .map(|name| match name.trim() {
            "smtp-sink" => Sink::start("smtp-sink"),
            "aiosmtpd" => Sink::start("aiosmtpd"),
            other => panic!("unknown sink `{other}`"),
        })
        .collect();
    // The Python sink is ~50× slower: fewer e-mails keep its rounds short.
    let n_for = |sink: &Sink| if sink.name == "aiosmtpd" { n / 10 } else { n };
    // (ours, AMQP ceiling, SMTP ceiling) per sink, one entry per round.
    let mut figures: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); sinks.len()];
    for round in 1..=rounds {
        for (i, sink) in sinks.iter().enumerate() {
            let n = n_for(sink);
            let amqp = rig.amqp_ceiling(n).await;
            if let Some(every) = multi_ack() {
                let batched = rig.amqp_consume(n, every).await;
                eprintln!(
                    "round {round}, {}: bare lapin, one `multiple` ack every {every}: {batched:.0}/s ({:.2}× one ack each)",
                    sink.name,
                    batched / amqp
                );
            }
            let smtp = rig.smtp_ceiling(sink, n).await;
            let ours = rig.consumers(sink, n).await;
            eprintln!(
                "round {round}, {}: consumers {ours:.0}/s, bare lapin consume+ack {amqp:.0}/s, SMTP client alone {smtp:.0}/s ({n} e-mails)",
                sink.name
            );
            figures[i].push((ours, amqp, smtp));
        }
    }
    rig.redis.shutdown().await;
    broker.close().await;
    print_table(&sinks, &figures, n, rounds);
}

/// The table: one row per sink, each cell the range over the rounds.
fn print_table(sinks: &[Sink], figures: &[Vec<(f64, f64, f64)>], n: usize, rounds: usize) {
    println!(
        "{rounds} rounds; per row and round: {n} e-mails into smtp-sink, {} into aiosmtpd; {} at a time, prefetch {}, de-duplication on Redis\n",
        n / 10,
        concurrency(),
        prefetch()
    );
    println!(
        "| e-mails/s from a full queue into | smap-identity consumers | bare lapin consume+ack (same run) | SMTP client alone (same run) | ours / lower ceiling | goal |"
    );
    println!("|---|---|---|---|---|---|");
    for (sink, rows) in sinks.iter().zip(figures) {
        let ours: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let amqp: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let smtp: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let ratios: Vec<f64> = rows.iter().map(|r| r.0 / r.1.min(r.2) * 100.0).collect();
        let goal = if sink.name == "smtp-sink" {
            let met = ours.iter().all(|&o| o >= 6000.0) && ratios.iter().all(|&r| r >= 50.0);
            format!(
                "≥ 6000/s and ≥ 50 %: {}",
                if met { "MET" } else { "NOT MET" }
            )
        } else {
            "— (the sink is the limit)".to_owned()
        };
        println!(
            "| {} | {}/s | {}/s | {}/s | {} % | {goal} |",
            sink.name,
            range(&ours),
            range(&amqp),
            range(&smtp),
            range(&ratios),
        );
    }
}
