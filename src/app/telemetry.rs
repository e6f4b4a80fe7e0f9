//! Logging and tracing: `tracing` with readable text in development and
//! JSON lines in production, filtered by `RUST_LOG`, and an OpenTelemetry
//! layer so every span has a trace context that crosses RabbitMQ in the
//! W3C `traceparent` header (see `adapters::message`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use super::config::{LogFormat, Settings};

/// Keeps the tracer provider alive; `shutdown` flushes it.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// The W3C trace-context propagator and a tracer provider, installed once.
/// Spans are not exported yet (OTLP export is future work); they still give
/// every log line and every message its trace context.
fn provider() -> SdkTracerProvider {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder().build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    provider
}

/// Installs the global subscriber; a second call (tests) keeps the first.
pub fn init(settings: &Settings) -> Telemetry {
    let provider = provider();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("smap-identity"));
    let filter = EnvFilter::try_new(&settings.rust_log).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = match settings.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
    };
    // Err only when a subscriber is already installed: keep that one.
    drop(result);
    Telemetry { provider }
}

/// Trace contexts without log output (tests that do not want logs).
pub fn init_silent() -> Telemetry {
    let provider = provider();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("smap-identity"));
    drop(tracing_subscriber::registry().with(otel).try_init());
    Telemetry { provider }
}
