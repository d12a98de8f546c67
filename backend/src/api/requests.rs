//! One count per answered request (`planb_requests_total{route,status}`,
//! `route` the pattern axum matched) and the verifier crate's access line per
//! request (`cognito_verifier::AccessLine`: who called what with what
//! result; `RUST_LOG=info,access=off` turns it off), for every route: a
//! tower layer on the whole router, after routing, so routes added with
//! `route`, `nest`, `merge` or `route_service` are all counted and logged by
//! their pattern.
//!
//! A layer rather than `axum::middleware::from_fn`, which boxes the inner
//! service and the future of every request: this runs on every request, and
//! the two boxes were a fifth of what the access line costs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use cognito_verifier::{AccessLine, UNMATCHED_ROUTE};
use hyper::StatusCode;
use prometheus::{IntCounterVec, Registry};
use tower::{Layer, Service};

use crate::metrics::{counter_vec, Series};

/// The series (name after the registry's prefix, help) this module counts in.
pub const SERIES: Series = (
    "requests_total",
    "Requests answered, by route pattern and status.",
);

/// The request counter.
#[derive(Clone)]
pub struct RequestCount {
    requests: IntCounterVec,
}

impl RequestCount {
    /// The counter, registered in `registry`.
    pub fn new(registry: &Registry) -> RequestCount {
        RequestCount {
            requests: counter_vec(registry, SERIES, &["route", "status"]),
        }
    }

    /// Counts one answer with `status` to a request of `route` (a pattern).
    pub fn record(&self, route: &str, status: StatusCode) {
        self.requests
            .with_label_values(&[route, status.as_str()])
            .inc();
    }
}

/// The layer: every request goes on, its answer is counted and logged.
#[derive(Clone)]
pub struct CountRequests {
    count: Arc<RequestCount>,
}

impl CountRequests {
    /// Counts in `count`.
    pub fn new(count: Arc<RequestCount>) -> CountRequests {
        CountRequests { count }
    }
}

impl<S> Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            count: self.count.clone(),
        }
    }
}

/// A service whose answers are counted and logged.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    count: Arc<RequestCount>,
}

impl<S> Service<Request> for Counted<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = CountedAnswer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let line = AccessLine::start(&request);
        CountedAnswer {
            answer: self.inner.call(request),
            seen: Some(Seen {
                count: self.count.clone(),
                route,
                line,
            }),
        }
    }
}

/// What the answer is counted and logged with.
struct Seen {
    count: Arc<RequestCount>,
    route: Option<MatchedPath>,
    line: Option<AccessLine>,
}

pin_project_lite::pin_project! {
    /// The inner service's answer, counted and logged when it is ready.
    pub struct CountedAnswer<F> {
        #[pin]
        answer: F,
        seen: Option<Seen>,
    }
}

impl<F, E> Future for CountedAnswer<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.answer.poll(cx));
        if let (Ok(answer), Some(seen)) = (&result, this.seen.take()) {
            let route = seen
                .route
                .as_ref()
                .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
            seen.count.record(route, answer.status());
            if let Some(line) = seen.line {
                line.finish(route, answer);
            }
        }
        Poll::Ready(result)
    }
}
