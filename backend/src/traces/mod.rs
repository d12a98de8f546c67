//! Traces to AWS X-Ray through an OpenTelemetry collector (`OTEL_EXPORTER_OTLP_ENDPOINT`).
//!
//! Off unless the endpoint is set: then no OpenTelemetry layer is installed and the request
//! path is the one without traces. On, every request gets a server span (`{method} {route}`),
//! the matched route a `handler` span under it (its guard and handler), and the spans the
//! verifier (`key fetch`) and the notes store (`DynamoDB.{call}`) open land under those: the
//! `tracing` spans of this crate and of `cognito_verifier` are exported over OTLP/HTTP
//! (protobuf) by the SDK's batch processor, from its own thread.
//!
//! The request continues the trace of its `x-amzn-trace-id` (the header itself is left
//! as it is). ALB writes only `Root` (and `Self` for a second ALB): the request span
//! is then the trace's first span, with that root as its trace id. With a `Parent` it
//! is that segment's child, and its `Sampled=1` or `0` is followed (`Sampled=?` or none:
//! the ratio decides, on the trace id). A root alone, or no header, is the ratio's to decide
//! too.

use std::cell::Cell;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_aws::trace::xray_propagator::span_context_from_str;
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{
    IdGenerator, Sampler, SamplingDecision, SdkTracerProvider, ShouldSample,
};
use opentelemetry_sdk::Resource;
use tracing::field::Empty;
use tracing::{Instrument, Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, FilterExt, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::api::{self, app::App};

pub mod config;

pub use config::{Sampling, TraceConfig};

/// The header ALB adds and planb-proxy passes on.
pub const TRACE_HEADER: &str = "x-amzn-trace-id";
/// The crates whose `tracing` spans are exported; their events (the access line among
/// them) are logs, never span events.
const TRACED_CRATES: [&str; 2] = ["planb_backend", "cognito_verifier"];

/// The exporting half, kept by `main` to flush what is queued at shutdown.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Sends the spans still queued and stops the exporter. Blocking: call it outside
    /// the tokio runtime, as the batch processor's thread and its HTTP client are.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces: the last spans were not all sent");
        }
    }
}

/// The exporter and the layer that hands it this crate's and the verifier's spans.
/// Builds a blocking HTTP client: call it before the tokio runtime exists.
pub fn layer<S>(config: &TraceConfig) -> Result<(impl Layer<S>, Tracing), String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&config.traces_url)
        .build()
        .map_err(|e| format!("planb-backend: OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling.ratio,
        ))))
        .with_id_generator(HeaderRootIds::default())
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("planb-backend");
    let spans = TRACED_CRATES.iter().fold(Targets::new(), |t, krate| {
        t.with_target(*krate, Level::INFO)
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        // Parents come from tracing's own span stack: no OpenTelemetry context is attached
        // at each poll of an instrumented future.
        .with_context_activation(false)
        .with_filter(filter_fn(|meta| meta.is_span()).and(spans));
    Ok((layer, Tracing { provider }))
}

/// The service with traces: `api::router`'s, with a `handler` span on every matched route
/// (inside the request count and CORS, around the route's guard and handler) and a
/// request span around everything.
pub fn traced_router(app: Arc<App>, sampling: Sampling) -> Router {
    let routes = api::routes(&app).route_layer(from_fn(handler_span));
    api::build(routes, app).layer(from_fn_with_state(sampling, request_span))
}

async fn request_span(State(sampling): State<Sampling>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(cognito_verifier::UNMATCHED_ROUTE, MatchedPath::as_str);
    let method = req.method().as_str();
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    continue_trace(&span, req.headers(), sampling);
    let answer = next.run(req).instrument(span.clone()).await;
    let status = answer.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    answer
}

async fn handler_span(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(cognito_verifier::UNMATCHED_ROUTE, MatchedPath::as_str);
    let span = tracing::info_span!("handler", http.route = route);
    next.run(req).instrument(span).await
}

/// Makes `span` continue the trace its request's X-Ray header names, if any.
fn continue_trace(span: &Span, headers: &hyper::HeaderMap, sampling: Sampling) {
    match upstream(headers, sampling) {
        Upstream::None => {}
        Upstream::Parent(parent) => {
            let _ = span.set_parent(Context::new().with_remote_span_context(parent));
        }
        Upstream::Root(trace_id) => {
            // The SDK takes a trace id from a parent span or from the id generator: a root
            // without a segment gets its id through the generator, while the span starts.
            HEADER_ROOT.set(Some(trace_id));
            let _ = span.context();
            HEADER_ROOT.set(None);
        }
    }
}

/// What a request's `x-amzn-trace-id` says of its trace.
#[derive(Debug, PartialEq)]
enum Upstream {
    /// No header, or one that is not X-Ray's format: a new trace.
    None,
    /// `Root` only: the trace's first span is ours.
    Root(TraceId),
    /// `Root` and `Parent`: a child of that segment, sampled as decided.
    Parent(SpanContext),
}

fn upstream(headers: &hyper::HeaderMap, sampling: Sampling) -> Upstream {
    let Some(parsed) = headers
        .get(TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| span_context_from_str(v.trim()))
    else {
        return Upstream::None;
    };
    if parsed.span_id() == SpanId::INVALID {
        return Upstream::Root(parsed.trace_id());
    }
    let flags = parsed.trace_flags();
    // Bit 1 is the propagator's mark for `Sampled=?` or no `Sampled`: no decision yet.
    let undecided = flags.to_u8() & 0x02 != 0 && !flags.is_sampled();
    let sampled = if undecided {
        ratio_samples(sampling, parsed.trace_id())
    } else {
        flags.is_sampled()
    };
    Upstream::Parent(SpanContext::new(
        parsed.trace_id(),
        parsed.span_id(),
        TraceFlags::default().with_sampled(sampled),
        true,
        parsed.trace_state().clone(),
    ))
}

thread_local! {
    /// The header's root while the request span starts on this thread (see [`continue_trace`]).
    static HEADER_ROOT: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// The ratio's decision for `trace_id`, as the sampler takes it for a trace that starts here.
fn ratio_samples(sampling: Sampling, trace_id: TraceId) -> bool {
    let sampler = Sampler::TraceIdRatioBased(sampling.ratio);
    let result = sampler.should_sample(None, trace_id, "", &SpanKind::Server, &[], &[]);
    result.decision == SamplingDecision::RecordAndSample
}

/// X-Ray's trace ids (the time in the first 32 bits, as X-Ray wants), or the root of the
/// request's header while its span starts.
#[derive(Debug, Default)]
struct HeaderRootIds(XrayIdGenerator);

impl IdGenerator for HeaderRootIds {
    fn new_trace_id(&self) -> TraceId {
        HEADER_ROOT.take().unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cognito_verifier::ConfigError;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Option<TraceConfig>, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        TraceConfig::from_lookup(&|k: &str| map.get(k).map(|v| v.to_string()))
    }

    fn header(value: &str, ratio: f64) -> Upstream {
        let mut h = hyper::HeaderMap::new();
        h.insert(TRACE_HEADER, value.parse().unwrap());
        upstream(&h, Sampling { ratio })
    }

    const ROOT: &str = "1-67891233-abcdef012345678912345678";
    const TRACE: &str = "67891233abcdef012345678912345678";

    #[test]
    fn off_without_an_endpoint_and_the_infra_settings_read_as_infra_writes_them() {
        assert_eq!(config(&[]).unwrap(), None);
        let on = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.05"),
            ("OTEL_SERVICE_NAME", "planb-backend"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(on.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(on.sampling, Sampling { ratio: 0.05 });
        assert_eq!(on.service_name, "planb-backend");
        let always = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
        ]);
        assert_eq!(always.unwrap().unwrap().sampling.ratio, 0.0);
    }

    #[test]
    fn a_bad_setting_is_one_line_naming_its_variable() {
        for (var, value) in [
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ("OTEL_TRACES_SAMPLER_ARG", "-0.1"),
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}");
            let line = err.to_string();
            assert!(
                line.starts_with(&format!("{var}: ")) && line.contains(value),
                "{line}"
            );
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn albs_root_alone_makes_the_request_the_traces_first_span() {
        let want = Upstream::Root(TraceId::from_hex(TRACE).unwrap());
        assert_eq!(header(&format!("Root={ROOT}"), 1.0), want);
        // ALB2 in front of the backend adds its own `Self`.
        let self_first = format!("Self=1-67891234-0123456789abcdef01234567;Root={ROOT}");
        assert_eq!(header(&self_first, 1.0), want);
    }

    #[test]
    fn a_parent_segment_is_continued_with_its_decision_or_the_ratios() {
        let parent = |value: &str, ratio| match header(value, ratio) {
            Upstream::Parent(sc) => sc,
            other => panic!("{value}: {other:?}"),
        };
        let with = |sampled: &str| format!("Root={ROOT};Parent=53995c3f42cd8ad8{sampled}");
        let sc = parent(&with(";Sampled=1"), 0.0);
        assert_eq!(sc.trace_id(), TraceId::from_hex(TRACE).unwrap());
        assert_eq!(sc.span_id(), SpanId::from_hex("53995c3f42cd8ad8").unwrap());
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(!parent(&with(";Sampled=0"), 1.0).is_sampled());
        // No decision in the header: the ratio's, on the trace id.
        for undecided in ["", ";Sampled=?"] {
            assert!(parent(&with(undecided), 1.0).is_sampled(), "{undecided}");
            assert!(!parent(&with(undecided), 0.0).is_sampled(), "{undecided}");
        }
    }

    #[test]
    fn no_header_or_not_xrays_format_starts_a_trace() {
        assert_eq!(
            upstream(&hyper::HeaderMap::new(), Sampling { ratio: 1.0 }),
            Upstream::None
        );
        for bad in [
            "Root=abc",
            "Parent=53995c3f42cd8ad8",
            "garbage",
            "Root=1-xyz-123",
        ] {
            assert_eq!(header(bad, 1.0), Upstream::None, "{bad}");
        }
    }

    #[test]
    fn the_header_root_is_the_trace_id_once_then_xrays_own() {
        let ids = HeaderRootIds::default();
        let root = TraceId::from_hex(TRACE).unwrap();
        HEADER_ROOT.set(Some(root));
        assert_eq!(ids.new_trace_id(), root);
        let own = ids.new_trace_id();
        assert_ne!(own, root);
        // X-Ray's ids start with the time in seconds.
        let secs = u32::from_str_radix(&format!("{own:032x}")[..8], 16).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(u64::from(secs)) < 60);
    }
}
