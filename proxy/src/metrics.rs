//! Prometheus metrics: counters and a histogram updated on the request path
//! (atomics), and the upstream address set read from the load balancer at
//! scrape time.

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
