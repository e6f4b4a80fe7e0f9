//! [`SpanBatches`] behind a real SDK tracer provider, exporting to a
//! recording exporter: what is exported, when, and what is dropped.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};

use super::{BATCH_SIZE, BatchSettings, SpanBatches};

/// Records the size of every batch, the resource, and a shutdown; while
/// `stalling`, an export never completes (a collector that never answers).
#[derive(Debug, Clone, Default)]
struct Recording {
    batches: Arc<Mutex<Vec<usize>>>,
    resource: Arc<Mutex<Option<Resource>>>,
    shut_down: Arc<AtomicBool>,
    stalling: Arc<AtomicBool>,
}

impl Recording {
    fn exported(&self) -> usize {
        self.batches.lock().unwrap().iter().sum()
    }
}

impl SpanExporter for Recording {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let stall = self.stalling.load(Ordering::SeqCst);
        let batches = self.batches.clone();
        async move {
            if stall {
                std::future::pending::<()>().await;
            }
            batches.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shut_down.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.resource.lock().unwrap() = Some(resource.clone());
    }
}

fn settings(max_queued: usize, delay: Duration) -> BatchSettings {
    BatchSettings {
        max_queued,
        delay,
        export_timeout: Duration::from_millis(300),
    }
}

fn provider(exporter: &Recording, settings: BatchSettings) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(SpanBatches::new(exporter.clone(), settings))
        .with_resource(
            Resource::builder_empty()
                .with_service_name("batches")
                .build(),
        )
        .build()
}

fn end_spans(provider: &SdkTracerProvider, n: usize) {
    let tracer = provider.tracer("test");
    for _ in 0..n {
        tracer.start("span").end();
    }
}

/// Runs the SDK's blocking call off the async workers, as the service does.
async fn blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(call).await.unwrap()
}

async fn wait_until(what: impl Fn() -> bool, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if what() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    what()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_ended_is_exported_once_in_batches_of_at_most_512() {
    let exporter = Recording::default();
    let provider = provider(&exporter, settings(4096, Duration::from_secs(3600)));

    end_spans(&provider, 1300);
    let p = provider.clone();
    blocking(move || p.force_flush()).await.unwrap();

    assert_eq!(exporter.exported(), 1300);
    let batches = exporter.batches.lock().unwrap().clone();
    assert!(batches.iter().all(|&n| n <= BATCH_SIZE), "{batches:?}");
    assert!(batches.len() >= 3, "{batches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_goes_out_without_waiting_for_the_delay() {
    let exporter = Recording::default();
    let provider = provider(&exporter, settings(4096, Duration::from_secs(3600)));

    end_spans(&provider, BATCH_SIZE);

    let e = exporter.clone();
    assert!(wait_until(move || e.exported() == BATCH_SIZE, Duration::from_secs(5)).await);
    drop(provider);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_spans_than_a_batch_go_out_after_the_delay() {
    let exporter = Recording::default();
    let provider = provider(&exporter, settings(4096, Duration::from_millis(100)));

    end_spans(&provider, 5);

    let e = exporter.clone();
    assert!(wait_until(move || e.exported() == 5, Duration::from_secs(5)).await);
    drop(provider);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_over_the_queue_limit_are_dropped_not_held() {
    let exporter = Recording::default();
    let provider = provider(&exporter, settings(100, Duration::from_secs(3600)));

    end_spans(&provider, 250);
    let p = provider.clone();
    blocking(move || p.force_flush()).await.unwrap();

    assert_eq!(exporter.exported(), 100);
    // The queue is free again after the export.
    end_spans(&provider, 30);
    let p = provider.clone();
    blocking(move || p.force_flush()).await.unwrap();
    assert_eq!(exporter.exported(), 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_exports_what_is_queued_and_shuts_the_exporter_down() {
    let exporter = Recording::default();
    let provider = provider(&exporter, settings(4096, Duration::from_secs(3600)));

    end_spans(&provider, 10);
    let p = provider.clone();
    blocking(move || p.shutdown()).await.unwrap();

    assert_eq!(exporter.exported(), 10);
    assert!(exporter.shut_down.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_resource_reaches_the_exporter() {
    let exporter = Recording::default();
    let provider = provider(&exporter, settings(4096, Duration::from_secs(3600)));

    let p = provider.clone();
    blocking(move || p.force_flush()).await.unwrap();

    let resource = exporter.resource.lock().unwrap().clone().expect("resource");
    let name = resource.get(&opentelemetry::Key::new("service.name"));
    assert_eq!(name.map(|v| v.to_string()).as_deref(), Some("batches"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_a_bound_a_round_and_only_that_rounds_spans() {
    let exporter = Recording {
        stalling: Arc::new(AtomicBool::new(true)),
        ..Recording::default()
    };
    let provider = provider(&exporter, settings(4096, Duration::from_secs(3600)));

    // Six batches: one bound (300 ms) each would be 1.8 s. A full batch
    // may start a round before the flush starts another: two bounds.
    let started = Instant::now();
    end_spans(&provider, 6 * BATCH_SIZE);
    let p = provider.clone();
    let flushed = blocking(move || p.force_flush()).await;
    let took = started.elapsed();

    assert!(took < Duration::from_millis(1400), "{took:?}");
    // The collector is back: new spans go out, and none of the lost
    // rounds' spans is still queued in front of them.
    exporter.stalling.store(false, Ordering::SeqCst);
    end_spans(&provider, 5);
    let p = provider.clone();
    blocking(move || p.force_flush()).await.unwrap();
    assert_eq!(exporter.exported(), 5);
    // The provider wraps the processor's error in its own.
    if let Err(e) = &flushed {
        assert!(format!("{e:?}").contains("Timeout"), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_being_exported_count_against_the_queue_limit() {
    // The first round hangs until its bound: its 100 spans are held.
    let exporter = Recording {
        stalling: Arc::new(AtomicBool::new(true)),
        ..Recording::default()
    };
    let mut limits = settings(100, Duration::from_millis(50));
    limits.export_timeout = Duration::from_secs(2);
    let provider = provider(&exporter, limits);

    end_spans(&provider, 100);
    tokio::time::sleep(Duration::from_millis(300)).await; // the round has started
    end_spans(&provider, 50);
    exporter.stalling.store(false, Ordering::SeqCst);
    let p = provider.clone();
    blocking(move || p.force_flush()).await.unwrap();

    // The stalled round's 100 were held: none of the 50 fitted, and the
    // flush after it found nothing to send.
    assert_eq!(exporter.exported(), 0);
}
