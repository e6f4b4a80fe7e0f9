//! Prometheus metrics: one recorder for the whole process (the `metrics`
//! facade is process-global), the `/metrics` route, and the middleware that
//! counts, times and traces every HTTP request by route template.

use std::{sync::OnceLock, time::Instant};

use actix_web::{
    Error, HttpResponse, Responder,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    get,
    http::Method,
    middleware::Next,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::Extractor;

use crate::adapters::sampling::continue_trace;
use crate::{adapters::bus::topology, domain::events::keys, ports::PublishError};
use tracing::Instrument;

/// Latency buckets from 0.5 ms to 10 s: publish confirms are ~1 ms, requests
/// that hash a password ~100 ms.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus handle, installing the recorder on first use.
/// `None` when another recorder was installed first (then metrics go there).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_events();
    describe_emails();
    describe_dependencies();
    describe_http();
    describe_outbox();
    zero_known_series();
}

/// The event bus and the finish line.
fn describe_events() {
    metrics::describe_counter!(
        "events_published_total",
        "Events confirmed by the event bus, by routing key."
    );
    metrics::describe_counter!(
        "event_publish_failures_total",
        "Events that failed validation or publishing, by routing key and error type."
    );
    metrics::describe_counter!(
        "events_unroutable_total",
        "Events the broker confirmed but routed to no queue (nobody bound to the routing key), by routing key."
    );
    metrics::describe_histogram!(
        "event_publish_duration_seconds",
        metrics::Unit::Seconds,
        "Time from publish to broker confirm, per try."
    );
    metrics::describe_counter!(
        "projects_completed_total",
        "job.completed events confirmed by the broker (one per project; a rare re-publish after a lost mark counts again)."
    );
    metrics::describe_gauge!(
        "job_completions_pending",
        "Completions recorded by the finish line whose job.completed is not published yet, at the relay's last round."
    );
}

/// The e-mail consumers.
fn describe_emails() {
    metrics::describe_counter!(
        "emails_processed_total",
        "E-mail events handled by the consumers, by outcome (sent, duplicate)."
    );
    metrics::describe_counter!(
        "emails_failed_total",
        "E-mail events that could not be sent, by reason (invalid, smtp, dedup); each is dead-lettered."
    );
    metrics::describe_counter!(
        "email_dead_letters_total",
        "Messages moved to the dead-letter queue email.errors, by the queue they came from."
    );
    metrics::describe_counter!(
        "email_consumer_errors_total",
        "Consumer faults, by queue and kind (subscription_lost, dead_letter_unpublished, ack_failed)."
    );
}

/// The health checks of the dependencies.
fn describe_dependencies() {
    metrics::describe_gauge!(
        "dependency_up",
        "1 when the last health check of a dependency (component) passed, else 0."
    );
    metrics::describe_gauge!(
        "redis_memory_used_bytes",
        metrics::Unit::Bytes,
        "Redis used_memory at the last health check."
    );
    metrics::describe_gauge!(
        "redis_memory_max_bytes",
        metrics::Unit::Bytes,
        "Redis maxmemory at the last health check (0 = no limit)."
    );
}

/// The HTTP middleware (`track`).
fn describe_http() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route template and status."
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request duration by method, route template and status."
    );
}

/// The outbox relay.
fn describe_outbox() {
    metrics::describe_gauge!(
        "outbox_pending",
        "Outbox rows not yet published (EVENT_DELIVERY=outbox), at the relay's last look."
    );
    metrics::describe_gauge!(
        "outbox_oldest_age_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest unpublished outbox row (0 when none)."
    );
    metrics::describe_counter!(
        "outbox_relay_failures_total",
        "Outbox relay failures by kind: publish (a row not published), store (the outbox not read or updated), stalled (a pass abandoned at its lease)."
    );
}

/// Series whose labels are known up front start at 0, so `rate()` and the
/// alerts see them before the first event rather than "no data".
fn zero_known_series() {
    for outcome in ["sent", "duplicate"] {
        metrics::counter!("emails_processed_total", "outcome" => outcome).absolute(0);
    }
    for reason in ["invalid", "smtp", "dedup"] {
        metrics::counter!("emails_failed_total", "reason" => reason).absolute(0);
    }
    for queue in CONSUMED_QUEUES {
        metrics::counter!("email_dead_letters_total", "queue" => queue).absolute(0);
        for kind in ["subscription_lost", "dead_letter_unpublished", "ack_failed"] {
            metrics::counter!("email_consumer_errors_total", "queue" => queue, "kind" => kind)
                .absolute(0);
        }
    }
    metrics::counter!("projects_completed_total").absolute(0);
    metrics::gauge!("outbox_pending").set(0.0);
    metrics::gauge!("outbox_oldest_age_seconds").set(0.0);
    for kind in ["publish", "store", "stalled"] {
        metrics::counter!("outbox_relay_failures_total", "kind" => kind).absolute(0);
    }
    metrics::gauge!("job_completions_pending").set(0.0);
    // Publish series for every routing key (and failure kind): the
    // dashboard's panels have data from the first scrape, and `increase()`
    // in the alerts sees the first failure (a series born at 1 shows none).
    for key in keys::ALL {
        metrics::counter!("events_published_total", "routing_key" => key).absolute(0);
        metrics::counter!("events_unroutable_total", "routing_key" => key).absolute(0);
        // Registering a histogram exports it with empty buckets.
        let _ = metrics::histogram!("event_publish_duration_seconds", "routing_key" => key);
        for error_type in PublishError::ERROR_TYPES {
            metrics::counter!(
                "event_publish_failures_total",
                "routing_key" => key,
                "error_type" => error_type
            )
            .absolute(0);
        }
    }
    // The HTTP families exist from the first scrape too: that scrape's own
    // series (GET /metrics 200), counted only once it has been answered,
    // starts at 0.
    let scrape = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    metrics::counter!("http_requests_total", &scrape).absolute(0);
    let _ = metrics::histogram!("http_request_duration_seconds", &scrape);
}

#[cfg(feature = "legacy-fanout")]
const CONSUMED_QUEUES: [&str; 2] = [topology::EMAIL_QUEUE, topology::LEGACY_QUEUE];
#[cfg(not(feature = "legacy-fanout"))]
const CONSUMED_QUEUES: [&str; 1] = [topology::EMAIL_QUEUE];

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses((status = 200, description = "Success", body = String, content_type = "text/plain")),
    description = "Prometheus metrics (text format)."
)]
#[get("/metrics")]
pub async fn metrics_route() -> impl Responder {
    match prometheus() {
        Some(handle) => {
            handle.run_upkeep();
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(handle.render())
        }
        None => HttpResponse::ServiceUnavailable().body("metrics recorder unavailable\n"),
    }
}

struct RequestHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn caller_context(req: &ServiceRequest) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&RequestHeaders(req.headers())))
}

/// `dependency_up{component}`: the outcome of the last health check.
pub fn record_health(component: &'static str, healthy: bool) {
    metrics::gauge!("dependency_up", "component" => component).set(if healthy { 1.0 } else { 0.0 });
}

/// The method as a label: the standard methods by name, any other one
/// (clients may invent methods at will) as `_OTHER`, the OpenTelemetry
/// HTTP convention, so made-up methods cannot create series.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("_OTHER", Method::as_str)
}

/// Counts and times each request under its route template (`/projects/{id}/progress`),
/// never the raw path, so ids do not explode the label set; a path no
/// route matches is `unmatched`.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    // A caller that sends `traceparent` gets its trace continued.
    let span = continue_trace(caller_context(&req), || {
        tracing::info_span!(
            "http_request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    });
    let response = next.call(req).instrument(span.clone()).await;
    let status = match &response {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
