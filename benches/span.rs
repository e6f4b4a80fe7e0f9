//! The cost of one span — created, entered, closed — under the service's
//! whole subscriber stack (`EnvFilter`, the OpenTelemetry layer as
//! `telemetry::otel_layer` builds it, JSON logs into a sink), in three
//! configurations measured in one run (issue 15):
//!
//! - `off`: no OpenTelemetry layer (the baseline: what tracing costs anyway);
//! - `sampled_out`: the layer with `parentbased_traceidratio` whose root
//!   decision is "drop" (what 90 % of requests cost at ratio 0.1);
//! - `exported`: every span sampled and handed to a batch processor whose
//!   exporter discards the batch (the SDK's share of an export, without the
//!   network or a collector).
//!
//! Also the W3C header of a publish (`trace_headers`) inside a sampled-out
//! request, against the same call with the layer off: W3C propagates the
//! caller's context even when it is not sampled.
//!
//! Run: `cargo bench --bench span` (criterion; add `-- --quick` for a
//! short run).

// The library's limit of 60 lines a function (clippy.toml) holds here too:
// a benchmark reads as named steps, each short enough to check by eye.
#![warn(clippy::too_many_lines)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    trace::{BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter},
};
use smap_identity::{adapters::bus::message::trace_headers, app::telemetry};
use tracing::Dispatch;
use tracing_subscriber::{EnvFilter, prelude::*};

/// An exporter that drops every batch: the SDK's cost, not a collector's.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

enum Stack {
    Off,
    SampledOut,
    Exported,
}

/// The service's subscriber stack for `stack`, as a dispatcher of its own
/// (not global), with the provider that must outlive it.
fn dispatch(stack: &Stack) -> (Dispatch, Option<SdkTracerProvider>) {
    let provider = match stack {
        Stack::Off => None,
        Stack::SampledOut => Some(telemetry::provider_builder().build()),
        Stack::Exported => Some(
            telemetry::provider_builder()
                .with_span_processor(BatchSpanProcessor::builder(Discard).build())
                .build(),
        ),
    };
    let dispatch = match &provider {
        None => Dispatch::new(
            tracing_subscriber::registry()
                .with(EnvFilter::new("info"))
                .with(telemetry::json_layer(std::io::sink)),
        ),
        Some(provider) => Dispatch::new(
            // As `telemetry::init` stacks them.
            tracing_subscriber::registry()
                .with(telemetry::otel_layer(provider, roots(stack)))
                .with(EnvFilter::new("info"))
                .with(telemetry::json_layer(std::io::sink)),
        ),
    };
    (dispatch, provider)
}

/// The root sampler of `stack`, as `OTEL_TRACES_SAMPLER` would set it.
fn roots(stack: &Stack) -> Sampler {
    match stack {
        Stack::SampledOut => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        Stack::Off | Stack::Exported => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
    }
}

fn one_span() {
    let span = tracing::info_span!("bench.operation", bench.field = 42);
    let guard = span.enter();
    black_box(&guard);
    drop(guard);
    drop(span);
}

/// A request span and, inside it, the publish span and its W3C header.
fn publish_header() -> usize {
    let request = tracing::info_span!("HTTP request", http.method = "POST");
    let _request = request.enter();
    let publish = tracing::info_span!("smap.events publish", messaging.system = "rabbitmq");
    let _publish = publish.enter();
    trace_headers().len()
}

fn spans(c: &mut Criterion) {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut group = c.benchmark_group("span");
    for (name, stack) in [
        ("off", Stack::Off),
        ("sampled_out", Stack::SampledOut),
        ("exported", Stack::Exported),
    ] {
        let (dispatch, provider) = dispatch(&stack);
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |b| b.iter(one_span));
        });
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
    }
    group.finish();

    let mut group = c.benchmark_group("publish_header");
    for (name, stack) in [("off", Stack::Off), ("sampled_out", Stack::SampledOut)] {
        let (dispatch, provider) = dispatch(&stack);
        tracing::dispatcher::with_default(&dispatch, || {
            // The header is there when sampled out (W3C), absent when off.
            let headers = publish_header();
            assert_eq!(headers > 0, matches!(stack, Stack::SampledOut), "{name}");
            group.bench_function(name, |b| b.iter(publish_header));
        });
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
    }
    group.finish();
}

criterion_group!(benches, spans);
criterion_main!(benches);
