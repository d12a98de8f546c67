//! Every counter the backend exports, in one Prometheus registry rendered by
//! one writer (the `prometheus` crate's text encoder) on `GET /metrics`.
//!
//! Label values are chosen by the code (route patterns, status codes,
//! rejection codes, fixed operation names), never taken from a request, so
//! the series stay few. The ones dashboards rely on exist from the start at 0.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::error::Rejection;

/// Every metric the backend exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    failures: IntCounterVec,
    jwks_fetches: IntCounterVec,
    jwks_penalty: IntCounter,
    alb_key_fetches: IntCounterVec,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_entries: IntGauge,
    connections_open: IntGauge,
    connection_waits: IntCounter,
    dynamodb_calls: IntCounterVec,
}

/// The metric names and help texts, also the README's metrics table.
pub const METRICS: [(&str, &str); 11] = [
    (
        "planb_requests_total",
        "Requests answered, by route pattern and status.",
    ),
    (
        "planb_verification_failures_total",
        "Requests refused by token verification, by reason.",
    ),
    ("planb_jwks_fetches_total", "JWKS fetches, by result."),
    (
        "planb_jwks_penalty_box_total",
        "Unknown kids refused without a fetch (penalty box).",
    ),
    (
        "planb_alb_key_fetches_total",
        "ALB public key fetches, by result.",
    ),
    ("planb_token_cache_hits_total", "Verified-token cache hits."),
    (
        "planb_token_cache_misses_total",
        "Verified-token cache misses.",
    ),
    ("planb_token_cache_entries", "Verified tokens held."),
    ("planb_connections_open", "Connections being served."),
    (
        "planb_connection_waits_total",
        "Times the accept loop waited because MAX_CONNECTIONS were open.",
    ),
    (
        "planb_dynamodb_calls_total",
        "DynamoDB calls of the notes API, by operation and result.",
    ),
];

fn opts(name: &str) -> Opts {
    let help = METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, h)| *h);
    Opts::new(name, help)
}

fn counter(registry: &Registry, name: &str) -> IntCounter {
    let c = IntCounter::with_opts(opts(name)).expect("static metric");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn gauge(registry: &Registry, name: &str) -> IntGauge {
    let g = IntGauge::with_opts(opts(name)).expect("static metric");
    registry
        .register(Box::new(g.clone()))
        .expect("metric names are unique");
    g
}

fn counter_vec(registry: &Registry, name: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(opts(name), labels).expect("static metric");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn result(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            requests: counter_vec(&registry, "planb_requests_total", &["route", "status"]),
            failures: counter_vec(&registry, "planb_verification_failures_total", &["reason"]),
            jwks_fetches: counter_vec(&registry, "planb_jwks_fetches_total", &["result"]),
            jwks_penalty: counter(&registry, "planb_jwks_penalty_box_total"),
            alb_key_fetches: counter_vec(&registry, "planb_alb_key_fetches_total", &["result"]),
            cache_hits: counter(&registry, "planb_token_cache_hits_total"),
            cache_misses: counter(&registry, "planb_token_cache_misses_total"),
            cache_entries: gauge(&registry, "planb_token_cache_entries"),
            connections_open: gauge(&registry, "planb_connections_open"),
            connection_waits: counter(&registry, "planb_connection_waits_total"),
            dynamodb_calls: counter_vec(&registry, "planb_dynamodb_calls_total", &["op", "result"]),
            registry,
        };
        for why in Rejection::verification() {
            m.failures.with_label_values(&[why.code()]);
        }
        for ok in [true, false] {
            m.jwks_fetches.with_label_values(&[result(ok)]);
            m.alb_key_fetches.with_label_values(&[result(ok)]);
        }
        m
    }
}

impl Metrics {
    /// Counts one answered request; `route` is the route table's pattern.
    pub fn request(&self, route: &str, status: u16) {
        self.request_counter(route, status).inc();
    }

    /// The series [`Self::request`] counts `route`'s `status` answers in, for
    /// a caller that keeps it rather than look it up on every request.
    pub fn request_counter(&self, route: &str, status: u16) -> IntCounter {
        let buf = itoa_status(status);
        let status = std::str::from_utf8(&buf).unwrap_or("0");
        self.requests.with_label_values(&[route, status])
    }

    /// Counts one verification failure by reason (a guard's 403 is not one).
    pub fn failure(&self, why: Rejection) {
        if why.is_verification() {
            self.failures.with_label_values(&[why.code()]).inc();
        }
    }

    /// Counts one JWKS fetch.
    pub fn jwks_fetch(&self, ok: bool) {
        self.jwks_fetches.with_label_values(&[result(ok)]).inc();
    }

    /// Counts one unknown `kid` refused without a fetch because of the penalty box.
    pub fn jwks_penalty_box(&self) {
        self.jwks_penalty.inc();
    }

    /// Counts one ALB public key fetch.
    pub fn alb_key_fetch(&self, ok: bool) {
        self.alb_key_fetches.with_label_values(&[result(ok)]).inc();
    }

    /// Counts one verified-token cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        }
        .inc();
    }

    /// Counts one connection now being served.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// Counts one served connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// Counts one time the accept loop waited at `MAX_CONNECTIONS`.
    pub fn connection_wait(&self) {
        self.connection_waits.inc();
    }

    /// Counts one DynamoDB call by operation (`GetItem`, ...) and result label.
    pub fn dynamodb_call(&self, op: &str, result: &str) {
        self.dynamodb_calls.with_label_values(&[op, result]).inc();
    }

    /// Makes the DynamoDB call series `op`/`result` exist at 0 (dashboards see it before the first call).
    pub fn declare_dynamodb_call(&self, op: &str, result: &str) {
        self.dynamodb_calls.with_label_values(&[op, result]);
    }

    /// JWKS fetches so far: (succeeded, failed).
    pub fn jwks_fetch_counts(&self) -> (u64, u64) {
        (
            self.jwks_fetches.with_label_values(&["ok"]).get(),
            self.jwks_fetches.with_label_values(&["error"]).get(),
        )
    }

    /// The Prometheus text exposition, with the token cache holding `cache_entries`.
    pub fn render(&self, cache_entries: u64) -> String {
        self.cache_entries
            .set(i64::try_from(cache_entries).unwrap_or(i64::MAX));
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding a gathered registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A status code as three ASCII digits, without a heap allocation per request.
fn itoa_status(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let m = Metrics::default();
        m.request("/api/me", 200);
        m.request("/api/me", 200);
        m.request("/api/notes/{id}", 401);
        m.failure(Rejection::Expired);
        m.failure(Rejection::MissingGroup); // not a verification failure: ignored
        m.jwks_fetch(true);
        m.jwks_fetch(false);
        m.cache_lookup(true);
        m.dynamodb_call("Query", "timeout");
        let text = m.render(3);
        for line in [
            "planb_requests_total{route=\"/api/me\",status=\"200\"} 2\n",
            "planb_requests_total{route=\"/api/notes/{id}\",status=\"401\"} 1\n",
            "planb_verification_failures_total{reason=\"token_expired\"} 1\n",
            "planb_verification_failures_total{reason=\"unknown_kid\"} 0\n",
            "planb_jwks_fetches_total{result=\"ok\"} 1\n",
            "planb_jwks_fetches_total{result=\"error\"} 1\n",
            "planb_token_cache_hits_total 1\n",
            "planb_token_cache_entries 3\n",
            "planb_dynamodb_calls_total{op=\"Query\",result=\"timeout\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("missing_group"));
        assert_eq!(m.jwks_fetch_counts(), (1, 1));
    }

    #[test]
    fn every_registered_metric_is_in_the_table() {
        let m = Metrics::default();
        m.request("/health", 200);
        m.dynamodb_call("GetItem", "ok");
        let names: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for (name, _) in METRICS {
            assert!(names.iter().any(|n| n == name), "{name} not registered");
        }
        assert_eq!(names.len(), METRICS.len());
    }

    #[test]
    fn the_readme_metrics_table_lists_exactly_these() {
        let readme = include_str!("../README.md");
        let documented: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `planb_"))
            .filter_map(|l| l.split_once('`').map(|(n, _)| n))
            .collect();
        let mut want: Vec<String> = METRICS.iter().map(|(n, _)| n[6..].to_string()).collect();
        let mut got: Vec<String> = documented.iter().map(|n| n.to_string()).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "backend/README.md's metrics table");
    }
}
