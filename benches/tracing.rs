//! The cost of tracing: publish latency (real RabbitMQ), HTTP throughput on
//! a cheap read and on registrations (real work: Argon2) with
//! OpenTelemetry on — every span exported over OTLP/gRPC to a fake
//! collector in this process — against the same work with it off, in one
//! run. Each configuration runs in a child process of its own (the tracing
//! subscriber is process-global), alternating off / on / sampled
//! `ROUNDS` times; the medians are compared. A fourth child, "sdk", gives
//! the bare SDK's floor for a read's spans. The HTTP read runs closed-loop
//! (as fast as it goes) and paced (a fixed 12 000 reads a second, the same
//! load for every configuration). Goals (issue 15): at most 15 % with
//! every trace exported, 5 % with 10 % of traces sampled.
//!
//! Run: `scripts/bench.sh --bench tracing`.

// The library's limit of 60 lines a function (clippy.toml) holds here too:
// a benchmark reads as named steps, each short enough to check by eye.
#![warn(clippy::too_many_lines)]

#[allow(dead_code)]
#[path = "../tests/api/otlp_collector.rs"]
mod otlp_collector;

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        system::{RandomIds, SystemClock},
    },
    app::{
        config::{AppEnv, OtelSettings, OtlpProtocol, ParentlessSampler, Settings, TraceSampler},
        startup::Application,
        telemetry,
        wiring::Adapters,
    },
};
use tracing_subscriber::{EnvFilter, prelude::*};

mod support;

use lapin::options::QueueDeclareOptions;
use smap_identity::adapters::bus::topology::EVENTS_EXCHANGE;
use support::{bind_queue, confirm_channel, event_service, process_cpu, trial};

const MODE: &str = "SMAP_BENCH_TRACING_MODE";
const ENDPOINT: &str = "SMAP_BENCH_OTLP_ENDPOINT";
const PUBLISHES: usize = 3000;
/// Rounds of the three configurations (`TRACING_BENCH_ROUNDS` overrides):
/// the spread between two runs of one configuration on this machine is
/// ±10 %, so one round says little.
const ROUNDS: usize = 5;
const HTTP_CLIENTS: usize = 16;
const HTTP_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Figures {
    publish_p50_ms: f64,
    publish_p99_ms: f64,
    /// CPU of this process per publish (µs): the client side only.
    publish_cpu_us: f64,
    http_per_sec: f64,
    /// CPU of this process per request (µs): server and load generator,
    /// not the collector (another process).
    http_cpu_us: f64,
    http_p50_ms: f64,
    http_p99_ms: f64,
    register_per_sec: f64,
    register_p50_ms: f64,
    /// "sdk" only: CPU of this process per request's two spans built and
    /// exported through the bare OpenTelemetry SDK (µs), and how many spans
    /// it built.
    #[serde(default)]
    sdk_pair_cpu_us: f64,
    #[serde(default)]
    sdk_spans: u64,
    /// Spans the collector received from this child (set by the parent).
    #[serde(default)]
    exported: u64,
    /// The paced phase: reads a second reached (of `PACED_PER_SEC`) and
    /// this process's CPU per read (µs).
    #[serde(default)]
    paced_per_sec: f64,
    #[serde(default)]
    paced_cpu_us: f64,
    /// HTTP requests this child served, warm-up included: "on" must export
    /// two spans for each (plus the publish and register phases' spans).
    #[serde(default)]
    http_requests: u64,
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let i = ((samples.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(samples.len() - 1);
    samples[i].as_secs_f64() * 1000.0
}

/// Sequential publishes through `EventService` (validation, the producer
/// span, `traceparent`, the broker confirm), inside a request-like span.
async fn publish_latency(amqp: &str) -> (f64, f64, f64) {
    let broker = AmqpBroker::connect(amqp, AmqpConfig::default()).await;
    // A queue behind the key, as in production: an unroutable publish
    // takes the return path instead (lapin logs each returned message in
    // full), which is not what this measures. Exclusive: it goes with the
    // child process.
    let (_connection, channel) = confirm_channel(amqp).await.expect("channel");
    let queue = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    bind_queue(&channel, "", queue, EVENTS_EXCHANGE, "subscription.created")
        .await
        .expect("queue bound");
    let events = event_service(Arc::new(AmqpEventPublisher::new(broker)));
    let mut samples = Vec::with_capacity(PUBLISHES);
    let mut cpu = Duration::ZERO;
    for i in 0..PUBLISHES + 300 {
        if i == 300 {
            cpu = process_cpu();
        }
        let span = tracing::info_span!("bench_request");
        let started = Instant::now();
        tracing::Instrument::instrument(events.publish(trial()), span)
            .await
            .expect("published");
        if i >= 300 {
            samples.push(started.elapsed());
        }
    }
    let cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / PUBLISHES as f64;
    (
        percentile(&mut samples, 0.50),
        percentile(&mut samples, 0.99),
        cpu_us,
    )
}

/// `clients` closed-loop clients sending `request(client, n)` for `limit`
/// after a second of warm-up; requests per second, every latency, and
/// this process's CPU per request (µs).
async fn closed_loop<F, Fut>(
    clients: usize,
    limit: Duration,
    request: F,
) -> (f64, Vec<Duration>, f64)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let run = |limit: Duration, offset: usize| {
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let request = request.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut samples = Vec::new();
                    let mut n = offset;
                    while started.elapsed() < limit {
                        n += 1;
                        let t = Instant::now();
                        request(client, n).await;
                        samples.push(t.elapsed());
                    }
                    samples
                })
            })
            .collect::<Vec<_>>();
        async move {
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.expect("client"));
            }
            all
        }
    };
    // Request numbers of the warm-up and the run never meet (unique e-mails).
    run(Duration::from_secs(1), 1_000_000).await;
    let cpu = process_cpu();
    let samples = run(limit, 0).await;
    let cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / samples.len().max(1) as f64;
    (samples.len() as f64 / limit.as_secs_f64(), samples, cpu_us)
}

/// An app on the in-memory adapters; its base URL and settings.
fn in_memory_app(start_consumers: bool) -> (String, Settings) {
    let mut settings = Settings::for_tests();
    settings.start_consumers = start_consumers;
    let adapters = Adapters::in_memory(&settings, Arc::new(SystemClock), Arc::new(RandomIds));
    let app = Application::build_with(&settings, adapters).expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    (base, settings)
}

/// HTTP requests the progress readers sent, warm-up included.
static HTTP_REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An app on the in-memory store with a project to read: the URL of its
/// progress, the HTTP client, and the internal key.
async fn progress_reader() -> (String, reqwest::Client, String) {
    let (base, settings) = in_memory_app(false);
    let key = settings.internal_key.expose_secret().to_owned();
    let client = reqwest::Client::new();
    client
        .post(format!("{base}/internal/projects/bench/progress"))
        .header("X-Internal-Key", &key)
        .send()
        .await
        .expect("init");
    (format!("{base}/projects/bench/progress"), client, key)
}

/// One read of a project's progress (HTTP span + use-case span).
async fn read_progress(client: reqwest::Client, url: String, key: String) {
    let response = client
        .get(&url)
        .header("X-Internal-Key", &key)
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success());
    let _ = response.bytes().await;
    HTTP_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Closed-loop clients reading a project's progress on the in-memory
/// adapters, as fast as they can.
async fn http_throughput() -> (f64, f64, f64, f64) {
    let (url, client, key) = progress_reader().await;
    let (rate, mut samples, cpu_us) = closed_loop(HTTP_CLIENTS, HTTP_FOR, move |_, _| {
        read_progress(client.clone(), url.clone(), key.clone())
    })
    .await;
    (
        rate,
        percentile(&mut samples, 0.50),
        percentile(&mut samples, 0.99),
        cpu_us,
    )
}

/// Reads a second in the paced phase: below what every configuration
/// reaches on two cores (24 000–44 000/s closed-loop), so each pays its
/// own work per read at the same load, not the saturated machine's.
const PACED_PER_SEC: u64 = 12_000;

/// The same reads at a fixed [`PACED_PER_SEC`] for [`HTTP_FOR`] after a
/// second of warm-up, 16 clients each on its own schedule: reads a second
/// reached and this process's CPU per read (µs). At saturation, a slower
/// server answers fewer requests per wake-up, which raises every
/// request's share of the fixed costs; at one load for all, the
/// difference is the tracing work itself.
async fn http_paced() -> (f64, f64) {
    let (url, client, key) = progress_reader().await;
    let period = Duration::from_secs_f64(HTTP_CLIENTS as f64 / PACED_PER_SEC as f64);
    let run = |limit: Duration| {
        let tasks: Vec<_> = (0..HTTP_CLIENTS)
            .map(|i| {
                let (client, url, key) = (client.clone(), url.clone(), key.clone());
                tokio::spawn(async move {
                    let offset = period.mul_f64(i as f64 / HTTP_CLIENTS as f64);
                    let start = tokio::time::Instant::now() + offset;
                    let mut reads = 0u32;
                    while start.elapsed() < limit {
                        tokio::time::sleep_until(start + period * reads).await;
                        read_progress(client.clone(), url.clone(), key.clone()).await;
                        reads += 1;
                    }
                    u64::from(reads)
                })
            })
            .collect();
        async move {
            let mut reads = 0;
            for task in tasks {
                reads += task.await.expect("client");
            }
            reads
        }
    };
    run(Duration::from_secs(1)).await;
    let cpu = process_cpu();
    let reads = run(HTTP_FOR).await;
    let cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / reads.max(1) as f64;
    (reads as f64 / HTTP_FOR.as_secs_f64(), cpu_us)
}

/// Registrations (Argon2 hashing, the use case, a publish, the e-mail
/// consumer on the in-memory bus): a request that does real work.
async fn register_throughput() -> (f64, f64) {
    let (base, _) = in_memory_app(true);
    let client = reqwest::Client::new();
    let (rate, mut samples, _) = closed_loop(4, HTTP_FOR, move |worker, n| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let response = client
                .post(format!("{base}/authentication/register"))
                .json(&serde_json::json!({
                    "email": format!("bench-{worker}-{n}@example.com"),
                    "password": "correct horse battery"
                }))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 201);
        }
    })
    .await;
    (rate, percentile(&mut samples, 0.50))
}

/// With this variable set, the "on" and "sampled" children export through
/// the SDK's thread-based batch processor (it signals its thread once per
/// full batch) instead of the service's async-runtime one (one channel
/// message, so one task wake-up, per sampled span): an experiment.
const THREAD_PROCESSOR: &str = "SMAP_BENCH_TRACING_THREAD_PROCESSOR";

/// The experiment's provider: OTLP/gRPC to `endpoint`, the thread-based
/// batch processor (the layer's filter samples the roots).
fn thread_provider(endpoint: &str) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::BatchSpanProcessor;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .expect("exporter");
    telemetry::provider_builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .build()
}

/// The exporter settings of the bench: OTLP/gRPC to the parent's collector,
/// `root` deciding the traces without a parent.
fn otel_settings(root: ParentlessSampler) -> OtelSettings {
    OtelSettings {
        endpoint: std::env::var(ENDPOINT).expect("endpoint"),
        protocol: OtlpProtocol::Grpc,
        service_name: "smap-identity-bench".into(),
        resource_attributes: Vec::new(),
        batch_delay: Duration::from_millis(500),
        sampler: TraceSampler::ParentBased(root),
    }
}

/// Installs the subscriber of `mode` ("off", "on" or "sampled"); the
/// tracer provider to shut down at the end.
fn install(mode: &str) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    // Both modes format every log line the same way (into a sink), so the
    // difference is the OpenTelemetry layer and the export alone.
    let filter = EnvFilter::new("info");
    let logs = telemetry::json_layer(std::io::sink);
    if mode == "off" {
        tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .init();
        return None;
    }
    // "on": every trace; "sampled": one in ten new traces.
    let root = if mode == "sampled" {
        ParentlessSampler::Ratio(0.1)
    } else {
        ParentlessSampler::AlwaysOn
    };
    let otel = otel_settings(root);
    let provider = if std::env::var_os(THREAD_PROCESSOR).is_some() {
        thread_provider(&otel.endpoint)
    } else {
        telemetry::tracer_provider(Some(&otel), AppEnv::Test).expect("exporter")
    };
    let roots = telemetry::head_sampler(Some(&otel));
    let traces = telemetry::otel_layer(&provider, roots);
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .init();
    Some(provider)
}

/// Pairs of spans per second the "sdk" child builds: about what the "on"
/// child's HTTP clients reach, so its exporter sees a like load.
const SDK_PAIRS_PER_SEC: u64 = 40_000;

/// The bare SDK's floor (mode "sdk"): a cheap read's two spans — the
/// server span with its method, route and status, and the use case's
/// child — built through the OpenTelemetry API, no `tracing` layer, and
/// exported by the service's own provider (batch processor, OTLP/gRPC to
/// the parent's collector), paced at [`SDK_PAIRS_PER_SEC`]. CPU per pair
/// (µs) and spans built. Whatever "on" costs beyond it is the
/// `tracing`-to-OpenTelemetry bridge and ours.
async fn sdk_pairs(provider: &opentelemetry_sdk::trace::SdkTracerProvider) -> (f64, u64) {
    use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry::{Context, KeyValue};
    let tracer = provider.tracer("smap-identity");
    let pair = || {
        let server = tracer
            .span_builder("GET /projects/{id}/progress")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/projects/{id}/progress"),
            ])
            .start(&tracer);
        let cx = Context::current_with_span(server);
        drop(tracer.start_with_context("progress.get_progress", &cx));
        cx.span()
            .set_attribute(KeyValue::new("http.response.status_code", 200));
        cx.span().end();
    };
    let mut made = 0u64;
    let mut run = async |limit: Duration| {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut done = 0u64;
        while started.elapsed() < limit {
            tick.tick().await;
            let due = (started.elapsed().as_secs_f64() * SDK_PAIRS_PER_SEC as f64) as u64;
            while done < due {
                pair();
                done += 1;
            }
        }
        made += done;
        done
    };
    run(Duration::from_secs(1)).await;
    let cpu = process_cpu();
    let pairs = run(HTTP_FOR).await;
    let cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / pairs.max(1) as f64;
    (cpu_us, made * 2)
}

/// The "sdk" child: the subscriber of "off" (log lines cost the same) and
/// the floor measured beside it.
async fn sdk_child() -> Figures {
    install("off");
    let otel = otel_settings(ParentlessSampler::AlwaysOn);
    let provider = telemetry::tracer_provider(Some(&otel), AppEnv::Test).expect("exporter");
    let (sdk_pair_cpu_us, sdk_spans) = sdk_pairs(&provider).await;
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    Figures {
        sdk_pair_cpu_us,
        sdk_spans,
        ..Figures::default()
    }
}

/// One configuration, in this (child) process: prints its figures as JSON.
async fn child(mode: &str) {
    if mode == "sdk" {
        let figures = sdk_child().await;
        println!("{}", serde_json::to_string(&figures).expect("json"));
        return;
    }
    let provider = install(mode);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let amqp = std::env::var("AMQP_URL").expect("AMQP_URL: run scripts/bench.sh");
    // `TRACING_BENCH_PHASES=http` (say) runs only those phases, e.g. to
    // profile one with `perf record`; the others report zeros.
    let phases = std::env::var("TRACING_BENCH_PHASES").unwrap_or_default();
    let runs = |phase: &str| phases.is_empty() || phases.split(',').any(|p| p == phase);
    let (publish_p50_ms, publish_p99_ms, publish_cpu_us) = if runs("publish") {
        publish_latency(&amqp).await
    } else {
        (0.0, 0.0, 0.0)
    };
    let (http_per_sec, http_p50_ms, http_p99_ms, http_cpu_us) = if runs("http") {
        http_throughput().await
    } else {
        (0.0, 0.0, 0.0, 0.0)
    };
    let (paced_per_sec, paced_cpu_us) = if runs("paced") {
        http_paced().await
    } else {
        (0.0, 0.0)
    };
    let (register_per_sec, register_p50_ms) = if runs("register") {
        register_throughput().await
    } else {
        (0.0, 0.0)
    };
    if let Some(provider) = provider {
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    let figures = Figures {
        publish_p50_ms,
        publish_p99_ms,
        publish_cpu_us,
        http_per_sec,
        http_cpu_us,
        http_p50_ms,
        http_p99_ms,
        register_per_sec,
        register_p50_ms,
        paced_per_sec,
        paced_cpu_us,
        http_requests: HTTP_REQUESTS.load(std::sync::atomic::Ordering::Relaxed),
        ..Figures::default()
    };
    println!("{}", serde_json::to_string(&figures).expect("json"));
}

/// Reads one figure out of a run.
type Metric = fn(&Figures) -> f64;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median of one figure over the runs of one configuration.
fn median_of(runs: &[(&str, Figures)], mode: &str, metric: Metric) -> f64 {
    median(
        runs.iter()
            .filter(|(m, _)| *m == mode)
            .map(|(_, x)| metric(x))
            .collect(),
    )
}

#[tokio::main]
async fn main() {
    if let Ok(mode) = std::env::var(MODE) {
        return child(&mode).await;
    }
    let collector = otlp_collector::Collector::grpc_counting().await;
    let runs = run_children(&collector);
    let spans = collector.received();
    println!("\nspans received by the fake collector: {spans}");
    print_table(&runs);
    print_sdk_floor(&runs);
}

/// `ROUNDS` rounds of the four configurations, each a child process of
/// this benchmark exporting to `collector`: the figures of each run, with
/// the spans the collector received from it.
fn run_children(collector: &otlp_collector::Collector) -> Vec<(&'static str, Figures)> {
    let exe = std::env::current_exe().expect("own path");
    let mut runs: Vec<(&str, Figures)> = Vec::new();
    let rounds: usize = std::env::var("TRACING_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let modes = ["off", "on", "sampled", "sdk"];
    for round in 1..=rounds {
        // Each round starts with the next configuration, so none always
        // runs right after another's export or on a broker that is still
        // writing the round before (the medians compare like with like).
        for mode in (0..modes.len()).map(|i| modes[(round - 1 + i) % modes.len()]) {
            let before = collector.received();
            let output = Command::new(&exe)
                .env(MODE, mode)
                .env(ENDPOINT, &collector.endpoint)
                .output()
                .expect("child runs");
            assert!(
                output.status.success(),
                "{mode}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let mut figures: Figures =
                serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("figures");
            figures.exported = (collector.received() - before) as u64;
            println!("round {round}, tracing {mode}: {figures:?}");
            runs.push((mode, figures));
        }
    }
    runs
}

/// The table: the median of each figure per configuration, and the
/// overhead of tracing against the run without it.
fn print_table(runs: &[(&str, Figures)]) {
    let rounds = runs.iter().filter(|(m, _)| *m == "off").count();
    let pick = |mode: &str, f: Metric| median_of(runs, mode, f);
    println!(
        "| measurement (median of {rounds} runs) | tracing off | on, every trace exported | overhead (goal ≤ 15 %) | on, 10 % of traces sampled | overhead (goal ≤ 5 %) |"
    );
    println!("|---|---|---|---|---|---|");
    let rows: [(&str, Metric, bool); 11] = [
        ("publish p50 (ms)", |f| f.publish_p50_ms, false),
        ("publish p99 (ms)", |f| f.publish_p99_ms, false),
        ("publish, CPU per publish (µs)", |f| f.publish_cpu_us, false),
        (
            "HTTP GET progress, 16 clients (req/s)",
            |f| f.http_per_sec,
            true,
        ),
        (
            "HTTP, CPU per request (µs, server and load generator)",
            |f| f.http_cpu_us,
            false,
        ),
        ("HTTP p50 (ms)", |f| f.http_p50_ms, false),
        ("HTTP p99 (ms)", |f| f.http_p99_ms, false),
        (
            "HTTP at a fixed 12 000 reads/s, CPU per read (µs)",
            |f| f.paced_cpu_us,
            false,
        ),
        (
            "HTTP at a fixed 12 000 reads/s, reads/s reached",
            |f| f.paced_per_sec,
            true,
        ),
        ("register, 4 clients (req/s)", |f| f.register_per_sec, true),
        ("register p50 (ms)", |f| f.register_p50_ms, false),
    ];
    let verdict = |overhead: f64, goal: f64| if overhead <= goal { "MET" } else { "NOT MET" };
    for (label, f, higher_is_better) in rows {
        let off = pick("off", f);
        if off == 0.0 {
            // A phase `TRACING_BENCH_PHASES` left out.
            continue;
        }
        let overhead = |x: f64| {
            if higher_is_better {
                (off - x) / off * 100.0
            } else {
                (x - off) / off * 100.0
            }
        };
        let (on, sampled) = (pick("on", f), pick("sampled", f));
        println!(
            "| {label} | {off:.3} | {on:.3} | {:+.1} % ({}) | {sampled:.3} | {:+.1} % ({}) |",
            overhead(on),
            verdict(overhead(on), 15.0),
            overhead(sampled),
            verdict(overhead(sampled), 5.0),
        );
    }
}

/// The bare SDK's floor against the request it would trace: whether the
/// goal of ≤ 15 % with every trace exported is within reach of the chosen
/// crates at all, and how much of "on" is above the floor.
fn print_sdk_floor(runs: &[(&str, Figures)]) {
    println!();
    let exporting = ["on", "sampled"];
    for (mode, f) in runs.iter().filter(|(m, _)| exporting.contains(m)) {
        // Two spans a read: what "on" received against what it built shows
        // whether its CPU figure paid for every span.
        println!(
            "{mode}: {} reads (both HTTP phases, warm-ups included), {} spans received by the collector \
             ({:.1} per read), {:.1} µs CPU per read",
            f.http_requests,
            f.exported,
            f.exported as f64 / f.http_requests.max(1) as f64,
            f.http_cpu_us
        );
    }
    for (_, f) in runs.iter().filter(|(m, _)| *m == "sdk") {
        println!(
            "sdk: {} spans built, {} received by the collector ({} dropped)",
            f.sdk_spans,
            f.exported,
            f.sdk_spans.saturating_sub(f.exported)
        );
    }
    let pick = |mode: &str, f: Metric| median_of(runs, mode, f);
    let off = pick("off", |f| f.http_cpu_us);
    if off == 0.0 {
        // The HTTP phase was left out: no read to compare the floor with.
        return;
    }
    let on = pick("on", |f| f.http_cpu_us);
    let sampled = pick("sampled", |f| f.http_cpu_us);
    let floor = pick("sdk", |f| f.sdk_pair_cpu_us);
    println!(
        "bare OpenTelemetry SDK, a read's two spans built and exported: {floor:.2} µs CPU \
         per pair = {:.1} % of the read's {off:.2} µs with tracing off (goal with every \
         trace exported: ≤ 15 % = {:.2} µs)",
        floor / off * 100.0,
        off * 0.15
    );
    println!(
        "tracing on adds {:.2} µs per read: {:.2} µs over the SDK floor (the bridge \
         and ours); sampled adds {:.2} µs (a tenth of the floor: {:.2} µs)",
        on - off,
        on - off - floor,
        sampled - off,
        floor / 10.0
    );
}
