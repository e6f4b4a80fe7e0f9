//! One trace from the HTTP request to the sent e-mail, as an operator sees
//! it: the real binary exports over OTLP to a fake collector in this
//! process, through real RabbitMQ (its own vhost) or the in-memory bus, and
//! a real SMTP server; its JSON log lines carry the trace ids and no raw
//! e-mail address.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    otlp_collector::{
        Collector, KIND_CLIENT, KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, ReceivedSpan, black_hole,
    },
    process::Service,
    real_smtp::Sink,
    servers::{Vhost, amqp_url, free_port},
};

/// A Maildir path for the sink (aiosmtpd creates it: it must not exist).
fn maildir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "smap-traces-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Messages the SMTP sink has written (aiosmtpd's Maildir).
fn delivered(maildir: &Path) -> usize {
    std::fs::read_dir(maildir.join("new"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

async fn wait_delivered(maildir: &Path, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered(maildir) < count {
        assert!(Instant::now() < deadline, "no e-mail reached the SMTP sink");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn register(base: &str, email: &str) {
    let response = reqwest::Client::new()
        .post(format!("{base}/authentication/register"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

fn has_smtp_sends(spans: &[ReceivedSpan], count: usize) -> bool {
    spans.iter().filter(|s| s.name == "smtp send").count() >= count
}

/// The spans of the registration's trace, checked link by link: request
/// (server) → use case → publish (producer) → consume (consumer, child of
/// the publish) → SMTP send (client). Returns the consumers.
fn assert_one_trace(spans: &[ReceivedSpan]) -> Vec<ReceivedSpan> {
    let request = spans
        .iter()
        .find(|s| s.kind == KIND_SERVER && s.attr("http.route") == Some("/authentication/register"))
        .unwrap_or_else(|| panic!("no HTTP server span for the registration: {spans:#?}"));
    let trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == request.trace_id)
        .collect();
    let named = |name: &str| {
        trace
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no `{name}` span in the trace: {trace:#?}"))
    };
    assert_eq!(request.attr("http.request.method"), Some("POST"));
    assert_eq!(request.attr("http.response.status_code"), Some("201"));
    let use_case = named("account.register");
    assert_eq!(use_case.parent_span_id, request.span_id);

    let producer = named("publish");
    assert_eq!(producer.kind, KIND_PRODUCER);
    let event_id = producer.attr("messaging.message.id").unwrap().to_owned();
    assert!(event_id.starts_with("evt_"), "{event_id}");
    assert_eq!(producer.attr("messaging.system"), Some("rabbitmq"));
    assert_eq!(
        producer.attr("messaging.destination.name"),
        Some("smap.events")
    );
    assert_eq!(
        producer.attr("messaging.rabbitmq.destination.routing_key"),
        Some("email.verification.requested")
    );

    let consumers: Vec<ReceivedSpan> = trace
        .iter()
        .filter(|s| s.kind == KIND_CONSUMER)
        .map(|s| (*s).clone())
        .collect();
    assert!(!consumers.is_empty(), "no consumer span in the trace");
    for consumer in &consumers {
        assert_eq!(
            consumer.attr("messaging.message.id"),
            Some(event_id.as_str())
        );
        assert_eq!(
            consumer.parent_span_id, producer.span_id,
            "consume continues the publish"
        );
    }
    let smtp = named("smtp send");
    assert_eq!(smtp.kind, KIND_CLIENT);
    assert_eq!(smtp.attr("messaging.message.id"), Some(event_id.as_str()));
    assert_eq!(smtp.attr("network.protocol.name"), Some("smtp"));
    assert_eq!(
        smtp.attr("otel.status_code"),
        None,
        "the status is the span's, not an attribute"
    );
    consumers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_through_rabbitmq_is_one_trace_from_request_to_smtp_send() {
    let Some(url) = amqp_url() else { return };
    // A vhost of its own: this process consumes the standard queue names.
    let vhost = Vhost::new(&url, "traces");
    let url = vhost.url.clone();
    let maildir = maildir("grpc");
    let smtp_port = free_port();
    let _sink = Sink::start(smtp_port, &maildir).expect("aiosmtpd starts");
    let collector = Collector::grpc().await;
    let service = Service::start(&[
        ("AMQP_URL", &url),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &smtp_port.to_string()),
        ("SMTP_TLS", "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint),
        ("OTEL_SERVICE_NAME", "identity-under-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.region=test-1"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("ENABLE_DUAL_PUBLISH", "true"),
    ])
    .await;

    register(&service.base, "grpc-trace@example.com").await;

    wait_delivered(&maildir, 1).await;
    // The consumer span ends after the SMTP send inside it, so it may come in
    // the exporter's next batch: wait for both.
    let spans = collector
        .wait_for(Duration::from_secs(20), |s| {
            has_smtp_sends(s, 1) && s.iter().any(|s| s.kind == KIND_CONSUMER)
        })
        .await;
    let consumers = assert_one_trace(&spans);
    let resource = &spans[0].resource;
    assert_eq!(resource["service.name"], "identity-under-test");
    assert_eq!(resource["deployment.region"], "test-1");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    // Dual-publishing: the legacy copy is consumed in the same trace (and
    // de-duplicated: one e-mail).
    #[cfg(feature = "legacy-fanout")]
    {
        let spans = collector
            .wait_for(Duration::from_secs(10), |s| {
                s.iter().filter(|s| s.kind == KIND_CONSUMER).count() >= 2
            })
            .await;
        let consumers = assert_one_trace(&spans);
        let mut queues: Vec<_> = consumers
            .iter()
            .map(|c| {
                c.attr("messaging.destination.name")
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        queues.sort();
        assert_eq!(queues, ["smtp_send_email", "smtp_send_email_v2"]);
        assert_eq!(delivered(&maildir), 1, "one e-mail for both copies");
    }
    #[cfg(not(feature = "legacy-fanout"))]
    assert_eq!(consumers.len(), 1);
    let _ = consumers;

    let (took, _) = service.stop().await;
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    drop(vhost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_protobuf_and_the_in_memory_bus_the_trace_is_flushed_at_shutdown() {
    let maildir = maildir("http");
    let smtp_port = free_port();
    let _sink = Sink::start(smtp_port, &maildir).expect("aiosmtpd starts");
    let collector = Collector::http().await;
    // Batches every 10 minutes: only the shutdown flush can deliver them.
    let service = Service::start(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &smtp_port.to_string()),
        ("SMTP_TLS", "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("ENABLE_DUAL_PUBLISH", "false"),
    ])
    .await;

    register(&service.base, "http-trace@example.com").await;
    wait_delivered(&maildir, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.spans().is_empty(),
        "nothing exported before the batch is due"
    );
    let (took, lines) = service.stop().await;

    let spans = collector.spans();
    assert!(
        has_smtp_sends(&spans, 1),
        "flushed at shutdown: {}",
        lines.join("\n")
    );
    let consumers = assert_one_trace(&spans);
    assert_eq!(consumers.len(), 1);
    assert_eq!(spans[0].resource["service.name"], "smap-identity");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
}

/// Median of `n` sequential progress-init calls, in milliseconds.
async fn median_request_ms(base: &str, n: usize) -> f64 {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let response = client
            .post(format!("{base}/internal/projects/speed-{i}/progress"))
            .header("X-Internal-Key", "dev-internal-key")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_down_requests_succeed_at_normal_speed() {
    // Baseline: no export at all.
    let plain = Service::start(&[]).await;
    median_request_ms(&plain.base, 20).await; // warm-up
    let baseline = median_request_ms(&plain.base, 100).await;
    plain.stop().await;

    // A collector that accepts connections and never answers, and one that
    // refuses them.
    let (hole, _held) = black_hole().await;
    let refused = format!("http://127.0.0.1:{}", free_port());
    for (endpoint, protocol) in [
        (&hole, "grpc"),
        (&hole, "http/protobuf"),
        (&refused, "grpc"),
    ] {
        let service = Service::start(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ])
        .await;
        median_request_ms(&service.base, 20).await;
        let down = median_request_ms(&service.base, 100).await;
        let (took, _) = service.stop().await;
        eprintln!(
            "collector down ({protocol} {endpoint}): median {down:.3} ms vs {baseline:.3} ms without export; stopped in {took:?}"
        );
        assert!(
            down < baseline * 2.0 + 2.0,
            "{protocol}: median {down:.3} ms with the collector down vs {baseline:.3} ms"
        );
        // The last flush gives up after the export timeout (5 s).
        assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_trace_and_never_a_raw_email_address() {
    let service = Service::start(&[("LOG_FORMAT", "json"), ("RUST_LOG", "debug")]).await;
    register(&service.base, "log-capture@example.com").await;
    // Wrong password on an unverified account, and a resend: more lines
    // that could mention the address.
    reqwest::Client::new()
        .post(format!("{}/authentication/send-otp", service.base))
        .json(&json!({"email": "log-capture@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, lines) = service.stop().await;

    assert!(lines.len() > 10, "{lines:#?}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &parsed {
        for key in ["time", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "no `{key}`: {line}");
        }
        if line.get("span").is_some() {
            let trace_id = line["trace_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{line}"));
            let span_id = line["span_id"].as_str().unwrap_or_else(|| panic!("{line}"));
            assert_eq!((trace_id.len(), span_id.len()), (32, 16), "{line}");
        }
    }
    // The registration's lines share one trace id, from request to e-mail.
    let registered = parsed
        .iter()
        .find(|l| l["message"] == "user registered; verification e-mail queued")
        .expect("the registration is logged");
    let trace_id = registered["trace_id"].as_str().unwrap();
    let in_trace: Vec<&Value> = parsed
        .iter()
        .filter(|l| l["trace_id"] == trace_id)
        .collect();
    assert!(
        in_trace.iter().any(|l| l["message"] == "event published")
            && in_trace.iter().any(|l| l["message"] == "e-mail sent"),
        "{in_trace:#?}"
    );
    let everything = lines.join("\n");
    assert!(
        !everything.contains("log-capture@example.com"),
        "a raw address was logged"
    );
    assert!(
        everything.contains("lo***@example.com"),
        "the masked form is logged"
    );
    assert!(
        !everything.contains("correct horse battery"),
        "a password was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_roots_sampled_off_only_a_callers_sampled_trace_is_exported_and_logs_keep_trace_ids() {
    // Arrange: new traces are never sampled; a caller's decision is followed.
    let collector = Collector::grpc().await;
    let service = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("LOG_FORMAT", "json"),
    ])
    .await;
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";

    // Act: two registrations of our own, one in the caller's sampled trace.
    register(&service.base, "unsampled-1@example.com").await;
    register(&service.base, "unsampled-2@example.com").await;
    let response = reqwest::Client::new()
        .post(format!("{}/authentication/register", service.base))
        .header(
            "traceparent",
            format!("00-{caller_trace}-b7ad6b7169203331-01"),
        )
        .json(&json!({"email": "sampled@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    collector
        .wait_for(Duration::from_secs(10), |s| {
            s.iter().any(|s| s.kind == KIND_CONSUMER)
        })
        .await;
    // Batches every 100 ms: anything of the other two would be here by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, lines) = service.stop().await;

    // Assert: every exported span is in the caller's trace, the request's
    // server span among them; every registration's log line names a trace.
    let spans = collector.spans();
    assert!(spans.iter().any(|s| s.kind == KIND_SERVER), "{spans:#?}");
    assert!(
        spans.iter().all(|s| s.trace_id == caller_trace),
        "only the caller's sampled trace is exported: {spans:#?}"
    );
    let registered: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "user registered; verification e-mail queued")
        .collect();
    assert_eq!(registered.len(), 3, "{lines:#?}");
    let mut traces: Vec<&str> = registered
        .iter()
        .map(|l| l["trace_id"].as_str().expect("a trace id on every line"))
        .collect();
    traces.sort_unstable();
    traces.dedup();
    assert_eq!(traces.len(), 3, "three traces: {traces:?}");
    assert!(traces.contains(&caller_trace));
}
