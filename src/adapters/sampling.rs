//! Head sampling before a span exists (issue 15, decision 69): the
//! OpenTelemetry layer sees only the spans of sampled traces.
//!
//! tracing-opentelemetry builds its data for every span (a `SpanBuilder`,
//! its attributes, a mutex, an SDK span) and asks the sampler only when the
//! span is first used, so a sampled-out request paid on its own threads
//! nearly what an exported one pays. Here [`HeadSampler`], a per-layer
//! filter on that layer, decides when a trace's root span is created — with
//! the configured sampler, from the caller's context when there is one
//! ([`continue_trace`]) — and keeps the whole trace from the layer when the
//! answer is no. Such a root carries an [`Unsampled`] context instead (the
//! caller's trace id or a new one, flags `00`) that log lines and published
//! messages read ([`unsampled_context`]), so an unsampled trace still
//! crosses the bus as W3C asks. A sampled root is exported under the trace
//! id it was sampled on ([`HeadIds`]): a `traceidratio` sampler downstream
//! (the relay, a consumer, another service) then takes the same decision.

use std::{
    cell::{Cell, RefCell},
    sync::OnceLock,
};

use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId},
};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample as _,
};
use tracing::{
    Metadata, Subscriber, callsite::Identifier, dispatcher::WeakDispatch, span,
    subscriber::Interest,
};
use tracing_subscriber::{
    Registry,
    layer::{Context as LayerContext, Filter, Layer},
    registry::{LookupSpan, SpanRef},
};

thread_local! {
    /// The caller's context of the root span [`continue_trace`] is creating
    /// on this thread.
    static CALLER: RefCell<Option<Context>> = const { RefCell::new(None) };
    /// The filter's decision on the root span being created on this thread,
    /// for [`UnsampledMarker`] to apply.
    static PENDING: RefCell<Option<(Identifier, Root)>> = const { RefCell::new(None) };
    /// The trace id [`HeadIds`] hands the SDK for the root it builds now.
    static ROOT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// What the filter decided for a root span.
#[derive(Debug)]
enum Root {
    /// Sampled without a caller: to be built under this trace id.
    Sampled(TraceId),
    /// Not sampled: the context its trace carries instead.
    Unsampled(SpanContext),
}

/// The tracer provider's id generator: random ids, except the trace id of
/// a sampled root, which is the one [`HeadSampler`] sampled it on.
#[derive(Debug, Default)]
pub struct HeadIds(RandomIdGenerator);

impl IdGenerator for HeadIds {
    fn new_trace_id(&self) -> TraceId {
        ROOT_TRACE_ID
            .take()
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// Clears what [`continue_trace`] set, also when making the span panics.
struct CallerGuard;

impl Drop for CallerGuard {
    fn drop(&mut self) {
        CALLER.with(|c| c.borrow_mut().take());
        PENDING.with(|p| p.borrow_mut().take());
    }
}

/// The trace context of an unsampled root span, in its extensions.
#[derive(Clone, Debug)]
pub struct Unsampled(pub SpanContext);

/// Creates the root span of a unit of work that continues `caller` (the
/// trace context a request or message carried; empty when it had none):
/// the sampling decision is taken as the span is created, from `caller`.
/// A sampled span gets `caller` as its OpenTelemetry parent.
pub fn continue_trace(caller: Context, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    CALLER.with(|c| *c.borrow_mut() = Some(caller.clone()));
    let guard = CallerGuard;
    let span = make();
    // A sampled root without a caller: the marker left its trace id here.
    let sampled_on = PENDING.with(|p| match p.borrow_mut().take() {
        Some((_, Root::Sampled(trace_id))) => Some(trace_id),
        _ => None,
    });
    drop(guard);
    // The caller (none: a root of its own) is the parent, whatever span is
    // current. An unsampled span has no OpenTelemetry data: nothing to set,
    // and the error says only that.
    if span.set_parent(caller).is_ok()
        && let Some(trace_id) = sampled_on
    {
        build_under(trace_id, || drop(span.context()));
    }
    span
}

/// Runs `build` (which builds an SDK span) with [`HeadIds`] handing out
/// `trace_id` for a root; cleared after, also if `build` panics.
fn build_under(trace_id: TraceId, build: impl FnOnce()) {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            ROOT_TRACE_ID.set(None);
        }
    }
    ROOT_TRACE_ID.set(Some(trace_id));
    let _clear = Clear;
    build();
}

/// The per-layer filter of the OpenTelemetry layer: roots are sampled
/// with `sampler`, every other span and event follows its parent; the
/// `plumbing` targets (the exporter's own crates) are never traced.
#[derive(Debug, Clone)]
pub struct HeadSampler {
    sampler: Sampler,
    ids: RandomIdGenerator,
    plumbing: &'static [&'static str],
}

impl HeadSampler {
    pub fn new(sampler: Sampler, plumbing: &'static [&'static str]) -> Self {
        Self {
            sampler,
            ids: RandomIdGenerator::default(),
            plumbing,
        }
    }

    fn is_plumbing(&self, target: &str) -> bool {
        self.plumbing.iter().any(|p| target.starts_with(p))
    }

    /// Samples a root span; an unsampled one's context waits in `PENDING`.
    fn decide_root(&self, meta: &Metadata<'_>) -> bool {
        CALLER.with(|caller| {
            let caller = caller.borrow();
            let parent = caller
                .as_ref()
                .map(|cx| cx.span().span_context().clone())
                .filter(SpanContext::is_valid);
            let trace_id = parent
                .as_ref()
                .map_or_else(|| self.ids.new_trace_id(), SpanContext::trace_id);
            let result = self.sampler.should_sample(
                caller.as_ref(),
                trace_id,
                meta.name(),
                &SpanKind::Internal,
                &[],
                &[],
            );
            let sampled = result.decision == SamplingDecision::RecordAndSample;
            let root = if !sampled {
                Some(Root::Unsampled(SpanContext::new(
                    trace_id,
                    self.ids.new_span_id(),
                    TraceFlags::default(),
                    false,
                    result.trace_state,
                )))
            } else if parent.is_none() {
                Some(Root::Sampled(trace_id))
            } else {
                // The SDK takes the caller's trace id itself.
                None
            };
            PENDING.with(|p| *p.borrow_mut() = root.map(|root| (meta.callsite(), root)));
            sampled
        })
    }
}

impl<S> Filter<S> for HeadSampler
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.is_plumbing(meta.target()) {
            Interest::never()
        } else {
            Interest::sometimes()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: &LayerContext<'_, S>) -> bool {
        if self.is_plumbing(meta.target()) {
            return false;
        }
        if meta.is_span() {
            // A decision no span took (the span was filtered out after this
            // filter) must not reach the next span of that callsite.
            PENDING.with(|p| p.borrow_mut().take());
        }
        if meta.is_span() && CALLER.with(|c| c.borrow().is_some()) {
            return self.decide_root(meta);
        }
        // `current_span` is the registry's, unfiltered; `cx.span` finds it
        // only if this filter let it through: a span of a sampled trace.
        match cx.current_span().id() {
            Some(parent) => cx.span(parent).is_some(),
            None if meta.is_span() => self.decide_root(meta),
            None => false,
        }
    }
}

/// Applies the filter's decision on a root span, after the OpenTelemetry
/// layer has seen it (a layer of its own, outside that one: the filter
/// sees no span it rejected): attaches [`Unsampled`] to an unsampled root,
/// and has the SDK build a sampled root now, under the trace id it was
/// sampled on — built later, on first use, it would get a random one.
#[derive(Debug, Default)]
pub struct UnsampledMarker {
    /// The dispatcher this layer runs in, to build a span through: asking
    /// for the default one from inside `on_new_span` gets none while any
    /// scoped dispatcher exists (tracing's re-entrancy guard).
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for UnsampledMarker
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        let callsite = attrs.metadata().callsite();
        let pending = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            match &*p {
                Some((site, _)) if *site == callsite => p.take().map(|(_, root)| root),
                _ => None,
            }
        });
        match pending {
            Some(Root::Unsampled(context)) => {
                if let Some(span) = ctx.span(id) {
                    span.extensions_mut().insert(Unsampled(context));
                }
            }
            // Inside `continue_trace`, which builds it once its parent is set.
            Some(Root::Sampled(trace_id)) if CALLER.with(|c| c.borrow().is_some()) => {
                PENDING.with(|p| *p.borrow_mut() = Some((callsite, Root::Sampled(trace_id))));
            }
            Some(Root::Sampled(trace_id)) => {
                if let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) {
                    build_under(trace_id, || {
                        drop(tracing_opentelemetry::get_otel_context(id, &dispatch));
                    });
                }
            }
            None => {}
        }
    }
}

/// The unsampled context `span` belongs to: its own, or its nearest
/// unsampled ancestor's.
pub fn unsampled_in<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>) -> Option<SpanContext> {
    span.scope()
        .find_map(|s| s.extensions().get::<Unsampled>().map(|u| u.0.clone()))
}

/// [`unsampled_in`] for a `tracing` span of the current dispatcher.
pub fn unsampled_context(span: &tracing::Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        unsampled_in(&registry.span(id)?)
    })
    .flatten()
}
