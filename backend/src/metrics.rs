//! The backend's counters, in the one Prometheus registry (prefix `planb_`)
//! the verifier also registers in, rendered by one writer (the `prometheus`
//! crate's text encoder) on `GET /metrics`.
//!
//! Label values are chosen by the code (route patterns, status codes,
//! rejection codes, fixed operation names), never taken from a request, so
//! the series stay few. The ones dashboards rely on exist from the start at 0.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The prefix of every series the backend exports, the verifier's included.
pub const PREFIX: &str = "planb";

/// Every metric the backend exports.
pub struct Metrics {
    registry: Registry,
    connections_open: IntGauge,
    connection_waits: IntCounter,
    dynamodb_calls: IntCounterVec,
}

/// A series' name (after [`PREFIX`]) and help text.
type Series = (&'static str, &'static str);

const CONNECTIONS_OPEN: Series = ("connections_open", "Connections being served.");
const CONNECTION_WAITS: Series = (
    "connection_waits_total",
    "Times the accept loop waited because MAX_CONNECTIONS were open.",
);
const DYNAMODB_CALLS: Series = (
    "dynamodb_calls_total",
    "DynamoDB calls of the notes API, by operation and result.",
);

/// The series registered here; the request count and the verifier
/// ([`cognito_verifier::METRICS`]) register their own in the same registry.
pub const METRICS: [Series; 3] = [CONNECTIONS_OPEN, CONNECTION_WAITS, DYNAMODB_CALLS];

fn opts((name, help): Series) -> Opts {
    Opts::new(name, help)
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        let registry =
            Registry::new_custom(Some(PREFIX.into()), None).expect("a static, valid prefix");
        let vec = |series, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(opts(series), labels).expect("static metric"),
            )
        };
        Metrics {
            dynamodb_calls: vec(DYNAMODB_CALLS, &["op", "result"]),
            connections_open: register(
                &registry,
                IntGauge::with_opts(opts(CONNECTIONS_OPEN)).expect("static metric"),
            ),
            connection_waits: register(
                &registry,
                IntCounter::with_opts(opts(CONNECTION_WAITS)).expect("static metric"),
            ),
            registry,
        }
    }
}

impl Metrics {
    /// The registry every series goes to: the verifier registers its own here.
    pub fn registry(&self) -> &Registry {
        &self.registry
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

    /// The Prometheus text exposition of every series, the verifier's included.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding a gathered registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let m = Metrics::default();
        m.connection_opened();
        m.dynamodb_call("Query", "timeout");
        m.dynamodb_call("Query", "timeout");
        let text = m.render();
        for line in [
            "planb_connections_open 1\n",
            "planb_dynamodb_calls_total{op=\"Query\",result=\"timeout\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
