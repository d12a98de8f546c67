//! The one Prometheus registry (prefix `planb_`) every counter is in, rendered
//! by one writer (the `prometheus` crate's text encoder) on `GET /metrics`.
//! Each concern registers its own series here: the request count
//! (`api::requests`), the connections (`server`), the DynamoDB calls
//! (`notes::metrics`) and the verifier ([`cognito_verifier::METRICS`]).
//!
//! Label values are chosen by the code (route patterns, status codes,
//! rejection codes, fixed operation names), never taken from a request, so
//! the series stay few. The ones dashboards rely on exist from the start at 0.

use prometheus::core::Collector;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The prefix of every series the backend exports, the verifier's included.
pub const PREFIX: &str = "planb";

/// A series' name (after [`PREFIX`]) and help text.
pub type Series = (&'static str, &'static str);

/// The registry.
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry =
            Registry::new_custom(Some(PREFIX.into()), None).expect("a static, valid prefix");
        Metrics { registry }
    }
}

impl Metrics {
    /// The registry every series goes to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every series, the verifier's included.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding a gathered registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

/// A counter with `labels`, registered in `registry`.
pub fn counter_vec(registry: &Registry, (name, help): Series, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a static metric");
    register(registry, c)
}

/// A counter without labels, registered in `registry`.
pub fn counter(registry: &Registry, (name, help): Series) -> IntCounter {
    register(
        registry,
        IntCounter::new(name, help).expect("a static metric"),
    )
}

/// A gauge, registered in `registry`.
pub fn gauge(registry: &Registry, (name, help): Series) -> IntGauge {
    register(
        registry,
        IntGauge::new(name, help).expect("a static metric"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text_under_the_prefix() {
        let m = Metrics::default();
        let calls = counter_vec(m.registry(), ("calls_total", "Calls."), &["op"]);
        calls.with_label_values(&["Query"]).inc_by(2);
        gauge(m.registry(), ("open", "Open.")).inc();
        let text = m.render();
        for line in ["planb_calls_total{op=\"Query\"} 2\n", "planb_open 1\n"] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
