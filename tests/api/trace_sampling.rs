//! Head sampling (decision 69) with the production layer stack (`telemetry::otel_layer`
//! and the JSON log layer) in a dispatcher of the test's own: which spans
//! reach the tracer provider, and what an unsampled trace still carries.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry::Context;
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{Sampler, Span, SpanData, SpanProcessor},
};
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

use smap_identity::{
    adapters::{
        bus::message::{HeaderValue, Headers, trace_context, trace_headers},
        sampling::continue_trace,
    },
    app::telemetry,
};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The spans the provider ended, by name.
#[derive(Debug, Default, Clone)]
struct Ended(Arc<Mutex<Vec<SpanData>>>);

impl Ended {
    /// (name, trace id) of every span ended.
    fn spans(&self) -> Vec<(String, String)> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .map(|s| (s.name.to_string(), s.span_context.trace_id().to_string()))
            .collect()
    }
}

impl SpanProcessor for Ended {
    fn on_start(&self, _: &mut Span, _: &Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Log lines written by the JSON layer.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn json(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Runs `work` under the production stack whose roots are sampled by
/// `roots`; the spans ended and the log lines.
fn traced(roots: Sampler, work: impl FnOnce()) -> (Vec<String>, Vec<serde_json::Value>) {
    let (ended, logs) = traced_spans(roots, work);
    (ended.into_iter().map(|(name, _)| name).collect(), logs)
}

/// [`traced`] with the trace id of every span ended.
fn traced_spans(
    roots: Sampler,
    work: impl FnOnce(),
) -> (Vec<(String, String)>, Vec<serde_json::Value>) {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let ended = Ended::default();
    let provider = telemetry::provider_builder()
        .with_span_processor(ended.clone())
        .build();
    let lines = Lines::default();
    let writer = lines.clone();
    // As `telemetry::init` stacks them.
    let subscriber = tracing_subscriber::registry()
        .with(telemetry::otel_layer(&provider, roots))
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(telemetry::json_layer(move || writer.clone()));
    tracing::subscriber::with_default(subscriber, work);
    (ended.spans(), lines.json())
}

fn caller(flags: &str) -> Context {
    let headers: Headers = [
        (
            "traceparent".to_owned(),
            HeaderValue::Text(format!("00-{CALLER_TRACE}-00f067aa0ba902b7-{flags}")),
        ),
        (
            "tracestate".to_owned(),
            HeaderValue::Text("vendor=opaque".to_owned()),
        ),
    ]
    .into_iter()
    .collect();
    trace_context(&headers)
}

/// A request root continuing `cx`, a publish inside it: the publish's
/// `traceparent`.
fn request(cx: Context) -> String {
    let root = continue_trace(cx, || tracing::info_span!("http_request"));
    let _entered = root.enter();
    let publish = tracing::info_span!("publish");
    let _inner = publish.enter();
    tracing::info!("published");
    match trace_headers().remove("traceparent") {
        Some(HeaderValue::Text(tp)) => tp,
        other => panic!("no traceparent: {other:?}"),
    }
}

fn parts(traceparent: &str) -> Vec<String> {
    traceparent.split('-').map(str::to_owned).collect()
}

#[test]
fn an_unsampled_root_reaches_no_span_processor_but_its_publish_carries_a_trace_with_flags_00() {
    let mut traceparent = String::new();

    let (ended, logs) = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)), || {
        traceparent = request(Context::new());
    });

    assert!(
        ended.is_empty(),
        "nothing built for an unsampled trace: {ended:?}"
    );
    let parts = parts(&traceparent);
    assert_eq!(parts[3], "00", "{traceparent}");
    assert_ne!(parts[1], "0".repeat(32));
    let line = &logs[0];
    assert_eq!(line["message"], "published");
    assert_eq!(line["trace_id"], parts[1].as_str(), "logs name the trace");
    assert_eq!(line["span_id"], parts[2].as_str());
}

#[test]
fn a_callers_unsampled_trace_is_continued_with_its_trace_id() {
    let mut traceparent = String::new();

    let (ended, _) = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)), || {
        traceparent = request(caller("00"));
    });

    assert!(ended.is_empty(), "the caller's 00 is followed: {ended:?}");
    let parts = parts(&traceparent);
    assert_eq!(parts[1], CALLER_TRACE);
    assert_eq!(parts[3], "00");
    assert_ne!(parts[2], "00f067aa0ba902b7", "a span id of ours");
}

#[test]
fn an_unsampled_trace_keeps_the_callers_tracestate() {
    let mut state = None;

    traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)), || {
        let root = continue_trace(caller("00"), || tracing::info_span!("consume"));
        let _entered = root.enter();
        state = trace_headers().remove("tracestate");
    });

    assert!(
        matches!(&state, Some(HeaderValue::Text(s)) if s == "vendor=opaque"),
        "{state:?}"
    );
}

#[test]
fn a_root_made_without_a_caller_is_sampled_by_the_root_sampler_too() {
    let sweep = || {
        let span = tracing::info_span!("billing.expire_due");
        let _entered = span.enter();
        match trace_headers().remove("traceparent") {
            Some(HeaderValue::Text(tp)) => tp,
            other => panic!("no traceparent: {other:?}"),
        }
    };
    let mut off = String::new();
    let mut on = String::new();

    let (dropped, _) = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)), || {
        off = sweep();
    });
    let (kept, _) = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)), || {
        on = sweep();
    });

    assert!(dropped.is_empty(), "{dropped:?}");
    assert!(off.ends_with("-00"), "{off}");
    assert_eq!(kept, ["billing.expire_due"]);
    assert!(on.ends_with("-01"), "{on}");
}

#[test]
fn a_callers_sampled_trace_is_recorded_whatever_the_root_sampler_says() {
    let mut traceparent = String::new();

    let (ended, logs) = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)), || {
        traceparent = request(caller("01"));
    });

    assert_eq!(ended, ["publish", "http_request"]);
    let parts = parts(&traceparent);
    assert_eq!(parts[1], CALLER_TRACE);
    assert_eq!(parts[3], "01");
    assert_eq!(logs[0]["trace_id"], CALLER_TRACE);
}

#[test]
fn spans_of_a_sampled_root_are_all_recorded_in_one_trace_across_an_await() {
    let mut traceparent = String::new();

    let (ended, _) = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)), || {
        let root = continue_trace(Context::new(), || tracing::info_span!("consume"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(
            async {
                tokio::task::yield_now().await;
                let inner = tracing::info_span!("smtp_send");
                let _entered = inner.enter();
                if let Some(HeaderValue::Text(tp)) = trace_headers().remove("traceparent") {
                    traceparent = tp;
                }
            }
            .instrument(root),
        );
    });

    assert_eq!(ended, ["smtp_send", "consume"]);
    assert_eq!(parts(&traceparent)[3], "01");
}

/// A request publishes; a consumer continues the published header: both
/// roots are sampled by `roots`.
fn request_then_consume() {
    let traceparent = request(Context::new());
    let headers: Headers = [("traceparent".to_owned(), HeaderValue::Text(traceparent))]
        .into_iter()
        .collect();
    let consume = continue_trace(trace_context(&headers), || tracing::info_span!("consume"));
    let _entered = consume.enter();
    tracing::info!("consumed");
}

/// A sweep (a root of its own, not made by `continue_trace`) publishes; a
/// consumer continues the published header.
fn sweep_then_consume() {
    let sweep = tracing::info_span!("billing.expire_due");
    let headers = sweep.in_scope(trace_headers);
    drop(sweep);
    let consume = continue_trace(trace_context(&headers), || tracing::info_span!("consume"));
    let _entered = consume.enter();
    tracing::info!("consumed");
}

#[test]
fn a_trace_id_ratio_that_ignores_parents_still_keeps_traces_whole_across_the_bus() {
    // Not parent-based: each side decides on the trace id alone, so the
    // root must be exported under the id it was sampled on.
    assert_whole_at_a_quarter(request_then_consume, "http_request");
}

#[test]
fn a_root_made_without_a_caller_keeps_its_trace_whole_under_a_trace_id_ratio() {
    assert_whole_at_a_quarter(sweep_then_consume, "billing.expire_due");
}

/// Runs `flow` 2 000 times under `traceidratio` 0.25 (not parent-based):
/// about a quarter of the `root` spans sampled (the odds of falling outside
/// 380..=620 are below 1e-9), each with its consumer, no consumer alone.
fn assert_whole_at_a_quarter(flow: fn(), root: &str) {
    let (ended, _) = traced_spans(Sampler::TraceIdRatioBased(0.25), || {
        for _ in 0..2_000 {
            flow();
        }
    });
    let traces = |name: &str| -> Vec<&str> {
        let mut ids: Vec<&str> = ended
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .collect();
        ids.sort_unstable();
        ids
    };
    let requests = traces(root);
    assert!(
        (380..=620).contains(&requests.len()),
        "{} of 2 000",
        requests.len()
    );
    let consumers = traces("consume");
    let unmatched = consumers.iter().filter(|t| !requests.contains(t)).count();
    let lost = requests.iter().filter(|t| !consumers.contains(t)).count();
    assert_eq!(
        (lost, unmatched),
        (0, 0),
        "sampled requests whose consumer was not traced, and consumers without their request"
    );
}

#[test]
fn a_ratio_samples_about_its_share_of_roots_and_never_half_a_trace() {
    let (ended, _) = traced(
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.25))),
        || {
            for _ in 0..2_000 {
                let _ = request(Context::new());
            }
        },
    );

    let roots = ended.iter().filter(|n| *n == "http_request").count();
    let children = ended.iter().filter(|n| *n == "publish").count();
    assert_eq!(roots, children, "a trace is whole or absent");
    assert!((380..=620).contains(&roots), "{roots} of 2 000 at 0.25");
}
