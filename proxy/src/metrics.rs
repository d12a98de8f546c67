//! Prometheus metrics: counters and a histogram updated on the request path
//! (atomics), and the upstream address set read from the load balancer at
//! scrape time. Their names and meanings are tabled in the proxy's README,
//! from which infra ships them.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the proxy exports, in its own registry.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by status code (`status="0"`: the client went away first).
    pub requests: IntCounterVec,
    /// `requests` per status code, each resolved on its first use (a label
    /// lookup hashes and locks; this is one atomic load).
    by_status: Box<[OnceLock<IntCounter>]>,
    /// Requests that failed on the upstream side, by Pingora error type.
    pub upstream_errors: IntCounterVec,
    /// Connection attempts to an upstream address that failed (retried or not).
    pub upstream_connect_failures: IntCounter,
    /// From picking an upstream address to its response header.
    pub upstream_latency: Histogram,
    /// The addresses the load balancer currently holds (1 healthy, 0 not).
    pub upstream_addresses: IntGaugeVec,
    /// The upstream name in use (value 1).
    pub upstream_name: IntGaugeVec,
    /// Upstream DNS refreshes that failed.
    pub dns_refresh_failures: IntCounter,
    /// SSM parameter re-reads that failed.
    pub ssm_refresh_failures: IntCounter,
    /// Requests being proxied right now (from their head to their end).
    pub in_flight: IntGauge,
    /// Upstream connections a request went out on, opened for it.
    pub upstream_opened: IntCounter,
    /// Upstream connections a request went out on, reused from the pool.
    pub upstream_reused: IntCounter,
    /// Client connections cut because a request head took too long.
    pub request_head_timeouts: IntCounter,
    /// Responses that ended a kept connection: `downstream_max_requests` reached.
    pub closes_max_requests: IntCounter,
    /// Responses that ended a kept connection: the process is stopping.
    pub closes_shutdown: IntCounter,
}

impl Metrics {
    /// Every metric, registered, at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("planb_proxy".into()), None)
            .expect("static metric prefix is valid");
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Requests answered, by status code"),
            &["status"],
        )
        .expect("static metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "upstream_errors_total",
                "Requests that failed on the upstream side, by error type",
            ),
            &["kind"],
        )
        .expect("static metric");
        let upstream_connect_failures = IntCounter::new(
            "upstream_connect_failures_total",
            "Failed connection attempts to an upstream address",
        )
        .expect("static metric");
        let upstream_latency = Histogram::with_opts(
            HistogramOpts::new(
                "upstream_latency_seconds",
                "Time from picking an upstream address to its response header",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
        )
        .expect("static metric");
        let upstream_addresses = IntGaugeVec::new(
            Opts::new(
                "upstream_address",
                "Upstream addresses held by the load balancer (1 healthy, 0 unhealthy)",
            ),
            &["address"],
        )
        .expect("static metric");
        let upstream_name = IntGaugeVec::new(
            Opts::new("upstream_name", "The upstream name in use"),
            &["name"],
        )
        .expect("static metric");
        let dns_refresh_failures = IntCounter::new(
            "dns_refresh_failures_total",
            "Upstream DNS refreshes that failed (the last good addresses were kept)",
        )
        .expect("static metric");
        let ssm_refresh_failures = IntCounter::new(
            "ssm_refresh_failures_total",
            "SSM parameter re-reads that failed (the current name was kept)",
        )
        .expect("static metric");
        let in_flight = IntGauge::new("requests_in_flight", "Requests being proxied right now")
            .expect("static metric");
        let upstream_connections = IntCounterVec::new(
            Opts::new(
                "upstream_connections_total",
                "Upstream connections requests went out on: opened (reused=false) or from the pool",
            ),
            &["reused"],
        )
        .expect("static metric");
        let request_head_timeouts = IntCounter::new(
            "request_head_timeouts_total",
            "Client connections cut: a request head not complete within request_header_timeout_secs",
        )
        .expect("static metric");
        let keepalive_closes = IntCounterVec::new(
            Opts::new(
                "keepalive_closes_total",
                "Responses that said Connection: close to end a kept client connection, by reason",
            ),
            &["reason"],
        )
        .expect("static metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(upstream_errors.clone()),
            Box::new(upstream_connect_failures.clone()),
            Box::new(upstream_latency.clone()),
            Box::new(upstream_addresses.clone()),
            Box::new(upstream_name.clone()),
            Box::new(dns_refresh_failures.clone()),
            Box::new(ssm_refresh_failures.clone()),
            Box::new(in_flight.clone()),
            Box::new(upstream_connections.clone()),
            Box::new(request_head_timeouts.clone()),
            Box::new(keepalive_closes.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        // Present from the start (at 0), so dashboards and alerts see them.
        for kind in [
            "ConnectRefused",
            "ConnectTimedout",
            "ReadTimedout",
            "ConnectNoRoute",
        ] {
            upstream_errors.with_label_values(&[kind]);
        }
        Metrics {
            registry,
            requests,
            by_status: (0..1000).map(|_| OnceLock::new()).collect(),
            upstream_errors,
            upstream_connect_failures,
            upstream_latency,
            upstream_addresses,
            upstream_name,
            dns_refresh_failures,
            ssm_refresh_failures,
            in_flight,
            upstream_opened: upstream_connections.with_label_values(&["false"]),
            upstream_reused: upstream_connections.with_label_values(&["true"]),
            request_head_timeouts,
            closes_max_requests: keepalive_closes.with_label_values(&["max_requests"]),
            closes_shutdown: keepalive_closes.with_label_values(&["shutdown"]),
        }
    }

    /// Counts one answered request (`status` 0: none was sent).
    pub fn count_request(&self, status: u16) {
        match self.by_status.get(usize::from(status)) {
            Some(slot) => slot
                .get_or_init(|| self.requests.with_label_values(&[&status.to_string()]))
                .inc(),
            None => self
                .requests
                .with_label_values(&[&status.to_string()])
                .inc(),
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_counters_are_exported_with_their_labels_from_the_start() {
        let m = Metrics::new();
        m.upstream_reused.inc();
        m.closes_shutdown.inc();
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            "planb_proxy_upstream_connections_total{reused=\"false\"} 0",
            "planb_proxy_upstream_connections_total{reused=\"true\"} 1",
            "planb_proxy_request_head_timeouts_total 0",
            "planb_proxy_keepalive_closes_total{reason=\"max_requests\"} 0",
            "planb_proxy_keepalive_closes_total{reason=\"shutdown\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
