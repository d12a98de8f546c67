//! One count per answered request (`planb_requests_total{route,status}`,
//! `route` the pattern axum matched) and one access line per request, for
//! every route: axum middleware, layered on the whole router after routing,
//! so routes added with `route`, `nest`, `merge` or `route_service` are all
//! counted and logged by their pattern.
//!
//! The access line (target `access`, level info; `RUST_LOG=info,access=off`
//! turns it off) says who called what with what result: `method`, `route`,
//! `status`, `duration_ms`, `trace_id` (the `Root` of `x-amzn-trace-id`),
//! and for a verified caller `sub`, `kind`, `client_id`, `username`; for a
//! refusal its `refusal` code. Never a token, a cookie or a body: only what
//! the verifier established and the code the answer carries.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cognito_verifier::{Caller, ErrorCode};
use hyper::StatusCode;
use prometheus::{IntCounterVec, Registry};

use crate::metrics::{counter_vec, Series};

/// The `route` label of requests no route matched.
pub const UNMATCHED: &str = "other";

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

/// The middleware: the request goes on, its answer is counted and logged
/// (the caller from the verifier's [`Caller`] on the answer, a refusal's code
/// from the [`ErrorCode`] `json_error` marks it with).
pub async fn count(State(count): State<Arc<RequestCount>>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    // Only what the line needs, and only when it is on: the request itself moves on.
    let access = tracing::enabled!(target: "access", tracing::Level::INFO).then(|| {
        (
            Instant::now(),
            req.method().clone(),
            trace_root(req.headers()).map(String::from),
        )
    });
    let answer = next.run(req).await;
    count.record(route, answer.status());
    if let Some((started, method, trace_id)) = access {
        let who = answer.extensions().get::<Caller>().map(|Caller(who)| who);
        let refusal = answer
            .extensions()
            .get::<ErrorCode>()
            .map(|ErrorCode(c)| *c);
        tracing::info!(
            target: "access",
            method = method.as_str(),
            route,
            status = answer.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            trace_id,
            sub = who.map(|w| &*w.sub),
            kind = who.map(|w| w.kind.as_str()),
            client_id = who.map(|w| &*w.client_id),
            username = who.and_then(|w| w.username.as_deref()),
            refusal,
            "access"
        );
    }
    answer
}

/// The `Root` of an `x-amzn-trace-id` (`Root=1-...;Parent=...;Sampled=1`,
/// with ALB2's `Self=...` in front): the trace ALB1 started.
fn trace_root(headers: &hyper::HeaderMap) -> Option<&str> {
    let value = headers.get("x-amzn-trace-id")?.to_str().ok()?;
    let root = value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))?;
    // A well-formed root is short and printable; anything else is not logged.
    let well_formed =
        root.len() <= 64 && root.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    well_formed.then_some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_root_is_taken_from_any_position_and_only_when_well_formed() {
        let root = |v: &str| {
            let mut h = hyper::HeaderMap::new();
            h.insert("x-amzn-trace-id", v.parse().unwrap());
            trace_root(&h).map(String::from)
        };
        let id = "1-67891233-abcdef012345678912345678";
        assert_eq!(root(&format!("Root={id}")).as_deref(), Some(id));
        assert_eq!(
            root(&format!("Self=1-2-3;Root={id};Sampled=1")).as_deref(),
            Some(id)
        );
        assert_eq!(root("Self=1-2-3"), None);
        assert_eq!(root("Root=1-2-\"x\"}"), None);
        assert_eq!(trace_root(&hyper::HeaderMap::new()), None);
    }
}
