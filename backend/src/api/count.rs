//! One count per request (`planb_requests_total{route,status}`, `route` the
//! route table's pattern) and one log line per refusal, for every route
//! ([`super::front_door`] calls [`RouteCounts::record`] on every answer).

use std::sync::OnceLock;

use axum::response::Response;
use hyper::StatusCode;
use prometheus::IntCounter;

use crate::metrics::Metrics;
use cognito_verifier::ErrorCode;

/// The `route` label of requests no route matched.
pub const UNMATCHED: &str = "other";

/// A route of the table, by its place in [`RouteCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(usize);

/// The pattern of every route in the table, to find a request's route again
/// by its path: matchit, the matcher axum's router runs on, given the same
/// patterns, so the same route wins.
#[derive(Debug, Default)]
pub struct RouteCounts {
    /// The patterns without parameters, looked up first: an exact match is
    /// matchit's answer too (a static segment wins over a parameter), and
    /// comparing a few short strings is a fraction of a tree walk.
    fixed: Vec<(&'static str, RouteId)>,
    index: matchit::Router<RouteId>,
    routes: Vec<RouteCount>,
}

/// One route's pattern, and the series of its 200s once the first was
/// counted: the hot path skips the label lookup (other statuses are rare and
/// looked up each time).
#[derive(Debug)]
struct RouteCount {
    pattern: &'static str,
    ok: OnceLock<IntCounter>,
}

impl RouteCounts {
    /// Adds the route `pattern`; `Err` names the route it overlaps.
    pub fn add(&mut self, pattern: &'static str) -> Result<(), matchit::InsertError> {
        let id = RouteId(self.routes.len());
        self.index.insert(pattern, id)?;
        if !pattern.contains('{') {
            self.fixed.push((pattern, id));
        }
        self.routes.push(RouteCount {
            pattern,
            ok: OnceLock::new(),
        });
        Ok(())
    }

    /// The route that serves a request for `path`, if any.
    pub fn route_of(&self, path: &str) -> Option<RouteId> {
        match self.fixed.iter().find(|(pattern, _)| *pattern == path) {
            Some(&(_, id)) => Some(id),
            None => self.index.at(path).ok().map(|found| *found.value),
        }
    }

    fn get(&self, route: Option<RouteId>) -> Option<&RouteCount> {
        route.and_then(|RouteId(i)| self.routes.get(i))
    }

    /// The `route` label of `route`.
    pub fn label(&self, route: Option<RouteId>) -> &'static str {
        self.get(route).map_or(UNMATCHED, |r| r.pattern)
    }

    /// Counts the answer `r` to a request of `route` in `metrics` and logs it
    /// when it was refused.
    pub fn record(&self, metrics: &Metrics, route: Option<RouteId>, r: &Response) {
        let status = r.status();
        let known = self.get(route);
        let label = known.map_or(UNMATCHED, |r| r.pattern);
        match known {
            Some(route) if status == StatusCode::OK => route
                .ok
                .get_or_init(|| metrics.request_counter(label, 200))
                .inc(),
            _ => metrics.request(label, status.as_u16()),
        }
        if let Some(ErrorCode(code)) = r.extensions().get::<ErrorCode>() {
            tracing::debug!(
                route = label,
                status = status.as_u16(),
                reason = code,
                "request refused"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteCounts {
        let mut t = RouteCounts::default();
        for p in ["/api/me", "/api/notes", "/api/notes/{id}", "/"] {
            t.add(p).unwrap();
        }
        t
    }

    fn answer(status: StatusCode) -> Response {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = status;
        r
    }

    #[test]
    fn a_request_is_labelled_by_the_pattern_axum_would_route_it_to() {
        let t = table();
        for (path, label) in [
            ("/api/me", "/api/me"),
            ("/api/notes", "/api/notes"),
            ("/api/notes/n-1", "/api/notes/{id}"),
            ("/", "/"),
            ("/api/me/", UNMATCHED),
            ("/api/notes/a/b", UNMATCHED),
            ("/nothing", UNMATCHED),
        ] {
            assert_eq!(t.label(t.route_of(path)), label, "{path}");
        }
    }

    #[test]
    fn every_answer_is_counted_in_its_route_and_status_series() {
        let (t, m) = (table(), Metrics::default());
        let me = t.route_of("/api/me");
        // The first 200 resolves the kept series, the second uses it.
        t.record(&m, me, &answer(StatusCode::OK));
        t.record(&m, me, &answer(StatusCode::OK));
        t.record(&m, me, &answer(StatusCode::UNAUTHORIZED));
        t.record(&m, t.route_of("/api/notes/x"), &answer(StatusCode::OK));
        t.record(&m, None, &answer(StatusCode::NOT_FOUND));
        let text = m.render();
        for line in [
            "planb_requests_total{route=\"/api/me\",status=\"200\"} 2\n",
            "planb_requests_total{route=\"/api/me\",status=\"401\"} 1\n",
            "planb_requests_total{route=\"/api/notes/{id}\",status=\"200\"} 1\n",
            "planb_requests_total{route=\"other\",status=\"404\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn a_pattern_that_overlaps_another_is_refused() {
        let mut t = table();
        assert!(t.add("/api/notes/{other}").is_err());
        assert!(t.add("/api/me").is_err());
    }
}
