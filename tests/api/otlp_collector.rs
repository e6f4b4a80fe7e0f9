//! A fake OpenTelemetry collector inside the test process: the OTLP trace
//! service that `opentelemetry-proto` generates (gRPC, on tonic) and the
//! OTLP/HTTP protobuf endpoint `POST /v1/traces`. It keeps every span it
//! receives, flattened to what the assertions need.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
};
use prost::Message as _;
use tokio::net::TcpListener;

/// The OTLP span kinds.
pub const KIND_SERVER: i32 = 2;
pub const KIND_CLIENT: i32 = 3;
pub const KIND_PRODUCER: i32 = 4;
pub const KIND_CONSUMER: i32 = 5;

#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Spans {
    kept: Arc<Mutex<Vec<ReceivedSpan>>>,
    count: Arc<AtomicUsize>,
    /// Count only (benchmarks): a collector's cost should not weigh on the
    /// service it measures more than decoding does.
    count_only: bool,
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn map(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Spans {
    fn keep(&self, request: ExportTraceServiceRequest) {
        if self.count_only {
            let n: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.count.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let mut spans = self.kept.lock().unwrap();
        for resource_spans in request.resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| map(&r.attributes))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(ReceivedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        attributes: map(&span.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Spans {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.keep(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

pub struct Collector {
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` should be set to.
    pub endpoint: String,
    spans: Spans,
    server: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// An OTLP/gRPC collector on a port of its own.
    pub async fn grpc() -> Collector {
        Self::grpc_with(Spans::default()).await
    }

    /// An OTLP/gRPC collector that only counts the spans it receives.
    #[allow(dead_code)] // benches/tracing.rs
    pub async fn grpc_counting() -> Collector {
        Self::grpc_with(Spans {
            count_only: true,
            ..Spans::default()
        })
        .await
    }

    async fn grpc_with(spans: Spans) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(spans.clone());
        let server = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Collector {
            endpoint,
            spans,
            server,
        }
    }

    /// An OTLP/HTTP collector taking protobuf at `POST /v1/traces`.
    pub async fn http() -> Collector {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", std_listener.local_addr().unwrap());
        let spans = Spans::default();
        let kept = spans.clone();
        let server = actix_web::HttpServer::new(move || {
            let kept = kept.clone();
            actix_web::App::new().route(
                "/v1/traces",
                actix_web::web::post().to(move |body: actix_web::web::Bytes| {
                    let kept = kept.clone();
                    async move {
                        match ExportTraceServiceRequest::decode(body) {
                            Ok(request) => {
                                kept.keep(request);
                                actix_web::HttpResponse::Ok()
                                    .content_type("application/x-protobuf")
                                    .body(ExportTraceServiceResponse::default().encode_to_vec())
                            }
                            Err(_) => actix_web::HttpResponse::BadRequest().finish(),
                        }
                    }
                }),
            )
        })
        .workers(1)
        .listen(std_listener)
        .unwrap()
        .run();
        let server = tokio::spawn(async move {
            let _ = server.await;
        });
        Collector {
            endpoint,
            spans,
            server,
        }
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.kept.lock().unwrap().clone()
    }

    /// Spans received (both modes).
    #[allow(dead_code)] // benches/tracing.rs
    pub fn received(&self) -> usize {
        self.spans.count.load(Ordering::Relaxed) + self.spans.kept.lock().unwrap().len()
    }

    /// Waits until `done` holds for the spans received so far.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A listener that accepts connections and never answers: the worst
/// collector there is.
pub async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (endpoint, task)
}
