//! One count per answered request (`planb_requests_total{route,status}`,
//! `route` the pattern axum matched) and the verifier crate's access line per
//! request (`cognito_verifier::AccessLine`: who called what with what
//! result; `RUST_LOG=info,access=off` turns it off), for every route: axum
//! middleware, layered on the whole router after routing, so routes added
//! with `route`, `nest`, `merge` or `route_service` are all counted and
//! logged by their pattern.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cognito_verifier::{AccessLine, UNMATCHED_ROUTE};
use hyper::StatusCode;
use prometheus::{IntCounterVec, Registry};

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

/// The middleware: the request goes on, its answer is counted and logged.
pub async fn count(State(count): State<Arc<RequestCount>>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched
        .as_ref()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let line = AccessLine::start(&req);
    let answer = next.run(req).await;
    count.record(route, answer.status());
    if let Some(line) = line {
        line.finish(route, &answer);
    }
    answer
}
