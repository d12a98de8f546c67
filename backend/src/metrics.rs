//! Prometheus counters, rendered as text on `GET /metrics`.
//!
//! Every label set is known in advance (routes, status codes, rejection
//! reasons), so the counters are fixed arrays of atomics: the hot path is one
//! relaxed `fetch_add`, no map lookup and no lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::Rejection;
use crate::route::Route;

/// Status codes the server answers with, in counter order.
const STATUSES: [u16; 6] = [200, 401, 403, 404, 405, 503];

/// All the counters.
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; Route::ALL.len()],
    failures: [AtomicU64; Rejection::VERIFICATION.len()],
    jwks_fetches: [AtomicU64; 2],
    jwks_penalty: AtomicU64,
    alb_key_fetches: [AtomicU64; 2],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    connections_open: AtomicU64,
    connection_waits: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
            jwks_fetches: Default::default(),
            jwks_penalty: AtomicU64::new(0),
            alb_key_fetches: Default::default(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connection_waits: AtomicU64::new(0),
        }
    }
}

fn outcome(ok: bool) -> usize {
    usize::from(!ok)
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: Route, status: u16) {
        if let Some(s) = STATUSES.iter().position(|&x| x == status) {
            self.requests[route as usize][s].fetch_add(1, Relaxed);
        }
    }

    /// Counts one verification failure by reason.
    pub fn failure(&self, why: Rejection) {
        if let Some(i) = why.verification_index() {
            self.failures[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts one JWKS fetch.
    pub fn jwks_fetch(&self, ok: bool) {
        self.jwks_fetches[outcome(ok)].fetch_add(1, Relaxed);
    }

    /// Counts one unknown `kid` refused without a fetch because of the penalty box.
    pub fn jwks_penalty_box(&self) {
        self.jwks_penalty.fetch_add(1, Relaxed);
    }

    /// Counts one ALB public key fetch.
    pub fn alb_key_fetch(&self, ok: bool) {
        self.alb_key_fetches[outcome(ok)].fetch_add(1, Relaxed);
    }

    /// Counts one verified-token cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        }
        .fetch_add(1, Relaxed);
    }

    /// Counts one connection now being served.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
    }

    /// Counts one served connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// Counts one time the accept loop waited at `MAX_CONNECTIONS`.
    pub fn connection_wait(&self) {
        self.connection_waits.fetch_add(1, Relaxed);
    }

    /// JWKS fetches so far: (succeeded, failed).
    pub fn jwks_fetch_counts(&self) -> (u64, u64) {
        (
            self.jwks_fetches[0].load(Relaxed),
            self.jwks_fetches[1].load(Relaxed),
        )
    }

    /// The Prometheus text exposition.
    pub fn render(&self, cache_entries: u64) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP planb_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE planb_requests_total counter\n");
        for route in Route::ALL {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = self.requests[route as usize][s].load(Relaxed);
                let _ = writeln!(
                    out,
                    "planb_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    route.label()
                );
            }
        }
        out.push_str("# HELP planb_verification_failures_total Requests refused by token verification, by reason.\n");
        out.push_str("# TYPE planb_verification_failures_total counter\n");
        for (i, why) in Rejection::VERIFICATION.iter().enumerate() {
            let n = self.failures[i].load(Relaxed);
            let _ = writeln!(
                out,
                "planb_verification_failures_total{{reason=\"{}\"}} {n}",
                why.code()
            );
        }
        counter_pair(
            &mut out,
            "planb_jwks_fetches_total",
            "JWKS fetches, by result.",
            &self.jwks_fetches,
        );
        counter(
            &mut out,
            "planb_jwks_penalty_box_total",
            "Unknown kids refused without a fetch (penalty box).",
            &self.jwks_penalty,
        );
        counter_pair(
            &mut out,
            "planb_alb_key_fetches_total",
            "ALB public key fetches, by result.",
            &self.alb_key_fetches,
        );
        counter(
            &mut out,
            "planb_token_cache_hits_total",
            "Verified-token cache hits.",
            &self.cache_hits,
        );
        counter(
            &mut out,
            "planb_token_cache_misses_total",
            "Verified-token cache misses.",
            &self.cache_misses,
        );
        out.push_str("# HELP planb_token_cache_entries Verified tokens held.\n# TYPE planb_token_cache_entries gauge\n");
        let _ = writeln!(out, "planb_token_cache_entries {cache_entries}");
        let _ = writeln!(
            out,
            "# HELP planb_connections_open Connections being served.\n# TYPE planb_connections_open gauge\nplanb_connections_open {}",
            self.connections_open.load(Relaxed)
        );
        counter(
            &mut out,
            "planb_connection_waits_total",
            "Times the accept loop waited because MAX_CONNECTIONS were open.",
            &self.connection_waits,
        );
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, c: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        c.load(Relaxed)
    );
}

fn counter_pair(out: &mut String, name: &str, help: &str, c: &[AtomicU64; 2]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let _ = writeln!(out, "{name}{{result=\"ok\"}} {}", c[0].load(Relaxed));
    let _ = writeln!(out, "{name}{{result=\"error\"}} {}", c[1].load(Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let m = Metrics::default();
        m.request(Route::Me, 200);
        m.request(Route::Me, 200);
        m.request(Route::Me, 401);
        m.failure(Rejection::Expired);
        m.failure(Rejection::MissingGroup); // not a verification failure: ignored
        m.jwks_fetch(true);
        m.jwks_fetch(false);
        m.cache_lookup(true);
        let text = m.render(3);
        assert!(
            text.contains("planb_requests_total{route=\"/api/me\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("planb_requests_total{route=\"/api/me\",status=\"401\"} 1\n"));
        assert!(text.contains("planb_verification_failures_total{reason=\"token_expired\"} 1\n"));
        assert!(text.contains("planb_jwks_fetches_total{result=\"ok\"} 1\n"));
        assert!(text.contains("planb_jwks_fetches_total{result=\"error\"} 1\n"));
        assert!(text.contains("planb_token_cache_hits_total 1\n"));
        assert!(text.contains("planb_token_cache_entries 3\n"));
        assert_eq!(m.jwks_fetch_counts(), (1, 1));
    }
}
