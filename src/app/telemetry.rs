//! Logging and tracing: `tracing` with readable text in development and
//! JSON lines in production (each carrying `trace_id` and `span_id`),
//! filtered by `RUST_LOG`, and an OpenTelemetry layer so every span has a
//! trace context that crosses RabbitMQ in the W3C `traceparent` header (see
//! `adapters::bus::message`). Spans are exported over OTLP (gRPC or
//! HTTP/protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use json_subscriber::JsonLayer;
use opentelemetry::{KeyValue, trace::TraceContextExt as _, trace::TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    runtime,
    trace::{
        BatchConfigBuilder, Sampler, SdkTracerProvider, TracerProviderBuilder,
        span_processor_with_async_runtime,
    },
};
use tracing::{Subscriber, dispatcher::WeakDispatch};
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::Context, prelude::*, registry::LookupSpan};

use crate::adapters::sampling::{HeadIds, HeadSampler, UnsampledMarker, unsampled_in};

use super::config::{
    AppEnv, LogFormat, OtelSettings, OtlpProtocol, ParentlessSampler, Settings, TraceSampler,
};

/// How long one export may take, and how long shutdown waits for the last
/// batch: a dead collector costs the process at most this at exit.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans waiting for export; more are dropped (and counted by the SDK)
/// rather than held in memory while the collector is away.
const MAX_QUEUED_SPANS: usize = 4096;

/// The exporter's own crates: their spans are never exported, or every
/// export would trace itself.
const EXPORT_PLUMBING: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
];

/// Keeps the tracer provider alive; `shutdown` flushes it.
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans leave the process (an OTLP endpoint is configured).
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Exports the spans still queued and stops the exporter, waiting at
    /// most the export timeout.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The SDK blocks while it flushes; keep that off the async workers.
        let flush = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(EXPORT_TIMEOUT + Duration::from_secs(1), flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("smap-identity: trace export shutdown: {e}"),
            Ok(Err(e)) => eprintln!("smap-identity: trace export shutdown: {e}"),
            Err(_) => eprintln!("smap-identity: trace export did not flush in time"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter for {endpoint}: {source}")]
pub struct TelemetryError {
    endpoint: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

/// The resource every exported span carries: `service.name`,
/// `service.version`, `deployment.environment.name` and
/// `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(otel: &OtelSettings, app_env: AppEnv) -> Resource {
    let env = match app_env {
        AppEnv::Development => "development",
        AppEnv::Production => "production",
        AppEnv::Test => "test",
    };
    Resource::builder_empty()
        .with_service_name(otel.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("deployment.environment.name", env),
        ])
        .with_attributes(
            otel.resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build()
}

/// The sampler of trace roots: `OTEL_TRACES_SAMPLER` when spans are
/// exported, else every trace (parent-based: a caller's `00` is followed),
/// so log lines carry trace ids.
pub fn head_sampler(otel: Option<&OtelSettings>) -> Sampler {
    otel.map_or_else(
        || Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        |otel| sampler(otel.sampler),
    )
}

fn sampler(choice: TraceSampler) -> Sampler {
    let root = |inner: ParentlessSampler| match inner {
        ParentlessSampler::AlwaysOn => Sampler::AlwaysOn,
        ParentlessSampler::AlwaysOff => Sampler::AlwaysOff,
        ParentlessSampler::Ratio(r) => Sampler::TraceIdRatioBased(r),
    };
    match choice {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::Ratio(r) => Sampler::TraceIdRatioBased(r),
        TraceSampler::ParentBased(inner) => Sampler::ParentBased(Box::new(root(inner))),
    }
}

fn exporter(otel: &OtelSettings) -> Result<SpanExporter, TelemetryError> {
    let built = match otel.protocol {
        OtlpProtocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otel.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        // The specification: `<endpoint>/v1/traces` for HTTP.
        OtlpProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", otel.endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    };
    built.map_err(|source| TelemetryError {
        endpoint: otel.endpoint.clone(),
        source,
    })
}

/// A tracer provider for [`otel_layer`]: it records every span it is
/// given (the layer's filter sampled their traces) and builds sampled roots
/// under the trace id they were sampled on.
pub fn provider_builder() -> TracerProviderBuilder {
    SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_id_generator(HeadIds::default())
}

/// The tracer provider: exporting in batches on the tokio runtime when
/// `otel` is set (call it inside the runtime), in-process only otherwise.
/// Spans are queued and sent in the background, so a slow or absent
/// collector never holds up a request; when the queue is full, spans are
/// dropped. It samples every span it is given: [`otel_layer`] gives it
/// only the spans of traces [`head_sampler`] sampled.
pub fn tracer_provider(
    otel: Option<&OtelSettings>,
    app_env: AppEnv,
) -> Result<SdkTracerProvider, TelemetryError> {
    let Some(otel) = otel else {
        return Ok(provider_builder().build());
    };
    let batches = span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter(otel)?,
        runtime::Tokio,
    )
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_scheduled_delay(otel.batch_delay)
            .with_max_export_timeout(EXPORT_TIMEOUT)
            .build(),
    )
    .build();
    Ok(provider_builder()
        .with_span_processor(batches)
        .with_resource(resource(otel, app_env))
        .build())
}

/// The OpenTelemetry layer over `provider`, given only the spans of traces
/// `roots` samples (decided as each root span is created, see
/// `adapters::sampling`), never the exporter's own spans.
pub fn otel_layer<S>(provider: &SdkTracerProvider, roots: Sampler) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("smap-identity"))
        // Cheaper spans: no busy/idle timing, thread or source-location
        // attributes (the span names and messaging attributes say enough).
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        // No OpenTelemetry context attached to the thread on every enter and
        // exit of a span (the crate's default): nothing here reads
        // `opentelemetry::Context::current()`, parents come from tracing's
        // own span stack, and each poll of an instrumented future would pay
        // for the attach and the detach (issue 15, benchmarks.md).
        .with_context_activation(false)
        .with_filter(HeadSampler::new(roots, EXPORT_PLUMBING));
    // The marker runs after the OpenTelemetry layer has seen a new span.
    otel.and_then(UnsampledMarker::default())
}

/// Hands the JSON layer the dispatcher it runs in, which it needs to read
/// the OpenTelemetry ids of a span.
struct DispatchCapture(Arc<OnceLock<WeakDispatch>>);

impl<S: Subscriber> Layer<S> for DispatchCapture {
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }
}

/// One JSON object per line: `time`, `level`, `target`, the event's
/// fields at the top level (`message` among them), the current `span`, and
/// the OpenTelemetry `trace_id` and `span_id` of that span. The line's
/// time is `time`, not `timestamp`: published events log the envelope's
/// `timestamp` as a field of their own (DESIGN §7).
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let dispatch = Arc::new(OnceLock::<WeakDispatch>::new());
    let mut json = JsonLayer::new(writer);
    json.with_timer("time", fmt::time::SystemTime)
        .with_level("level")
        .with_target("target")
        .with_flattened_event()
        .with_current_span("span");
    let ids = Arc::clone(&dispatch);
    json.add_multiple_dynamic_fields(move |event, ctx: &Context<'_, S>, writer| {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let Some(dispatch) = ids.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        // A span of an unsampled trace has no OpenTelemetry data, only the
        // `Unsampled` context of its root.
        let ids = match tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) {
            Some(cx) => cx.span().span_context().clone(),
            None => match unsampled_in(&span) {
                Some(ids) => ids,
                None => return,
            },
        };
        if ids.is_valid() {
            let _ = writer.write_field("trace_id", ids.trace_id().to_string());
            let _ = writer.write_field("span_id", ids.span_id().to_string());
        }
    });
    DispatchCapture(dispatch).and_then(json)
}

fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Installs the global subscriber; a second call (tests) keeps the first.
/// Call it inside the tokio runtime: the exporter runs there.
pub fn init(settings: &Settings) -> Result<Telemetry, TelemetryError> {
    install_propagator();
    let provider = tracer_provider(settings.otel.as_ref(), settings.app_env)?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    let filter = EnvFilter::try_new(&settings.rust_log).unwrap_or_else(|_| EnvFilter::new("info"));
    // `RUST_LOG` outside the OpenTelemetry layer: a span it filters out is
    // rejected before the layer's filter samples it as a root.
    let registry = tracing_subscriber::registry()
        .with(otel_layer(&provider, head_sampler(settings.otel.as_ref())))
        .with(filter);
    let result = match settings.log_format {
        LogFormat::Json => registry.with(json_layer(std::io::stdout)).try_init(),
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
    };
    // Err only when a subscriber is already installed: keep that one.
    drop(result);
    match &settings.otel {
        Some(otel) => tracing::info!(
            endpoint = %otel.endpoint,
            protocol = ?otel.protocol,
            service_name = %otel.service_name,
            "traces exported over OTLP"
        ),
        None => tracing::info!("traces not exported: OTEL_EXPORTER_OTLP_ENDPOINT is unset"),
    }
    Ok(Telemetry {
        provider,
        exporting: settings.otel.is_some(),
    })
}

/// Trace contexts without log output (tests that do not want logs).
pub fn init_silent() -> Telemetry {
    install_propagator();
    let provider = provider_builder().build();
    drop(
        tracing_subscriber::registry()
            .with(otel_layer(&provider, head_sampler(None)))
            .try_init(),
    );
    Telemetry {
        provider,
        exporting: false,
    }
}
