//! Logs (`LOG_FORMAT`, `RUST_LOG`) and trace export (`OTEL_*`, as the
//! OpenTelemetry specification names them; only the endpoint switches
//! export on).

use super::{ConfigError, env::Env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The OTLP wire format (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc` (the default), usually port 4317.
    Grpc,
    /// `http/protobuf`, usually port 4318; spans go to `<endpoint>/v1/traces`.
    HttpProtobuf,
}

/// Where and as whom spans are exported; absent = no export.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelSettings {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://jaeger:4317`.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// `OTEL_SERVICE_NAME` (default `smap-identity`).
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs added to every span's resource.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_BSP_SCHEDULE_DELAY` (milliseconds, default 500): how long spans
    /// wait to be sent in a batch.
    pub batch_delay: std::time::Duration,
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: TraceSampler,
}

/// Which traces are recorded and exported (the OpenTelemetry sampler
/// names). Trace ids still cross every message and log line when a trace
/// is not sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampler {
    AlwaysOn,
    AlwaysOff,
    /// This fraction of new traces (0.0-1.0).
    Ratio(f64),
    /// Follow the caller's decision; new traces as the inner sampler says.
    ParentBased(ParentlessSampler),
}

/// The root sampler inside `ParentBased`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentlessSampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

/// The telemetry section of `Settings`.
pub(super) struct Telemetry {
    pub(super) otel: Option<OtelSettings>,
    pub(super) log_format: LogFormat,
    pub(super) rust_log: String,
}

/// Production logs JSON by default, development text.
pub(super) fn telemetry<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    production: bool,
) -> Result<Telemetry, ConfigError> {
    let default_format = if production {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    let log_format = env.parse(
        "LOG_FORMAT",
        default_format,
        |s| match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        },
        "text or json",
    )?;
    Ok(Telemetry {
        otel: otel(env)?,
        log_format,
        rust_log: env.get("RUST_LOG").unwrap_or_else(|| "info".into()),
    })
}

fn otel<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<OtelSettings>, ConfigError> {
    let Some(endpoint) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(ConfigError {
            var: "OTEL_EXPORTER_OTLP_ENDPOINT",
            problem: format!("is `{endpoint}`; expected an http:// or https:// URL"),
        });
    }
    let protocol = env.parse(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        OtlpProtocol::Grpc,
        |s| match s {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            _ => None,
        },
        "grpc or http/protobuf",
    )?;
    let resource_attributes = resource_attributes(env)?;
    let batch_delay = std::time::Duration::from_millis(env.parse(
        "OTEL_BSP_SCHEDULE_DELAY",
        500,
        |s| s.parse().ok().filter(|ms| *ms > 0),
        "a number of milliseconds above 0",
    )?);
    Ok(Some(OtelSettings {
        endpoint,
        batch_delay,
        sampler: sampler(env)?,
        protocol,
        service_name: env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| "smap-identity".to_owned()),
        resource_attributes,
    }))
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,…`, keys not empty.
fn resource_attributes<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<(String, String)>, ConfigError> {
    env.parse(
        "OTEL_RESOURCE_ATTRIBUTES",
        Vec::new(),
        |s| {
            s.split(',')
                .filter(|pair| !pair.trim().is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    let key = key.trim();
                    (!key.is_empty()).then(|| (key.to_owned(), value.trim().to_owned()))
                })
                .collect()
        },
        "comma-separated key=value pairs",
    )
}

/// `OTEL_TRACES_SAMPLER` with its ratio (`OTEL_TRACES_SAMPLER_ARG`);
/// parent-based always-on by default, as the specification says.
fn sampler<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<TraceSampler, ConfigError> {
    let ratio = env.parse(
        "OTEL_TRACES_SAMPLER_ARG",
        1.0,
        |s| s.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)),
        "a number from 0 to 1",
    )?;
    env.parse(
        "OTEL_TRACES_SAMPLER",
        TraceSampler::ParentBased(ParentlessSampler::AlwaysOn),
        |s| match s {
            "always_on" => Some(TraceSampler::AlwaysOn),
            "always_off" => Some(TraceSampler::AlwaysOff),
            "traceidratio" => Some(TraceSampler::Ratio(ratio)),
            "parentbased_always_on" => Some(TraceSampler::ParentBased(ParentlessSampler::AlwaysOn)),
            "parentbased_always_off" => {
                Some(TraceSampler::ParentBased(ParentlessSampler::AlwaysOff))
            }
            "parentbased_traceidratio" => {
                Some(TraceSampler::ParentBased(ParentlessSampler::Ratio(ratio)))
            }
            _ => None,
        },
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
    )
}
