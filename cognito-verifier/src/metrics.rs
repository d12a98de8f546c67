//! The verifier's counters, registered in the Prometheus registry the
//! application hands in ([`crate::Verifier::with_registry`]).
//!
//! Names carry no prefix: the application chooses one for all its series
//! with `Registry::new_custom`. Label values are chosen by the code
//! (rejection codes, `ok`/`error`), never taken from a request, so the series
//! stay few; the ones alarms rely on exist from the start at 0.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::rejection::Rejection;

/// Every series the verifier registers, with its help text (for an
/// application's documentation of its metrics).
pub const METRICS: [(&str, &str); 7] = [
    (
        "verification_failures_total",
        "Requests refused by token verification, by reason.",
    ),
    ("jwks_fetches_total", "JWKS fetches, by result."),
    (
        "jwks_penalty_box_total",
        "Unknown kids refused without a fetch (penalty box).",
    ),
    (
        "alb_key_fetches_total",
        "ALB public key fetches, by result.",
    ),
    ("token_cache_hits_total", "Verified-token cache hits."),
    ("token_cache_misses_total", "Verified-token cache misses."),
    ("token_cache_entries", "Verified tokens held."),
];

fn opts(name: &str) -> Opts {
    let help = METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, h)| *h);
    Opts::new(name, help)
}

fn result(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}

/// The verifier's counters; created unregistered, so a verifier without a
/// registry counts into nothing anyone reads.
pub(crate) struct Metrics {
    failures: IntCounterVec,
    jwks_fetches: IntCounterVec,
    jwks_penalty: IntCounter,
    alb_key_fetches: IntCounterVec,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        let vec = |name, label| IntCounterVec::new(opts(name), &[label]).expect("static metric");
        let counter = |name| IntCounter::with_opts(opts(name)).expect("static metric");
        let m = Metrics {
            failures: vec("verification_failures_total", "reason"),
            jwks_fetches: vec("jwks_fetches_total", "result"),
            jwks_penalty: counter("jwks_penalty_box_total"),
            alb_key_fetches: vec("alb_key_fetches_total", "result"),
            cache_hits: counter("token_cache_hits_total"),
            cache_misses: counter("token_cache_misses_total"),
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
    /// Registers every counter, and the cache's size read at each scrape, in `registry`.
    pub(crate) fn register(
        &self,
        registry: &Registry,
        cache_entries: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> prometheus::Result<()> {
        let gauge = IntGauge::with_opts(opts("token_cache_entries"))?;
        let collectors: [Box<dyn Collector>; 7] = [
            Box::new(self.failures.clone()),
            Box::new(self.jwks_fetches.clone()),
            Box::new(self.jwks_penalty.clone()),
            Box::new(self.alb_key_fetches.clone()),
            Box::new(self.cache_hits.clone()),
            Box::new(self.cache_misses.clone()),
            Box::new(ReadAtScrape {
                gauge,
                read: Box::new(cache_entries),
            }),
        ];
        collectors
            .into_iter()
            .try_for_each(|c| registry.register(c))
    }

    /// Counts one verification failure by reason (a guard's 403 is not one).
    pub(crate) fn failure(&self, why: Rejection) {
        if why.is_verification() {
            self.failures.with_label_values(&[why.code()]).inc();
        }
    }

    /// Counts one JWKS fetch.
    pub(crate) fn jwks_fetch(&self, ok: bool) {
        self.jwks_fetches.with_label_values(&[result(ok)]).inc();
    }

    /// Counts one unknown `kid` refused without a fetch because of the penalty box.
    pub(crate) fn jwks_penalty_box(&self) {
        self.jwks_penalty.inc();
    }

    /// Counts one ALB public key fetch.
    pub(crate) fn alb_key_fetch(&self, ok: bool) {
        self.alb_key_fetches.with_label_values(&[result(ok)]).inc();
    }

    /// Counts one verified-token cache lookup.
    pub(crate) fn cache_lookup(&self, hit: bool) {
        if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        }
        .inc();
    }

    /// Cache lookups so far: (hits, misses).
    #[cfg(test)]
    pub(crate) fn cache_lookups(&self) -> (u64, u64) {
        (self.cache_hits.get(), self.cache_misses.get())
    }

    /// Verification failures with `why` so far.
    #[cfg(test)]
    pub(crate) fn failures(&self, why: Rejection) -> u64 {
        self.failures.with_label_values(&[why.code()]).get()
    }
}

/// A gauge whose value is read when the registry is gathered: the token
/// cache's size, without a write on every request.
struct ReadAtScrape {
    gauge: IntGauge,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Collector for ReadAtScrape {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge
            .set(i64::try_from((self.read)()).unwrap_or(i64::MAX));
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counters_render_under_the_registrys_prefix() {
        let registry = Registry::new_custom(Some("app".into()), None).unwrap();
        let m = Metrics::default();
        m.register(&registry, || 3).unwrap();
        m.failure(Rejection::Expired);
        m.failure(Rejection::MissingGroup); // not a verification failure: ignored
        m.jwks_fetch(true);
        m.jwks_fetch(false);
        m.cache_lookup(true);
        let text = render(&registry);
        for line in [
            "app_verification_failures_total{reason=\"token_expired\"} 1\n",
            "app_verification_failures_total{reason=\"unknown_kid\"} 0\n",
            "app_jwks_fetches_total{result=\"ok\"} 1\n",
            "app_jwks_fetches_total{result=\"error\"} 1\n",
            "app_alb_key_fetches_total{result=\"error\"} 0\n",
            "app_token_cache_hits_total 1\n",
            "app_token_cache_entries 3\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("missing_group"));
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(names.len(), METRICS.len());
        for (name, _) in METRICS {
            assert!(names.contains(&format!("app_{name}")), "{name}");
        }
    }

    #[test]
    fn a_second_verifier_in_one_registry_is_an_error_not_a_panic() {
        let registry = Registry::new();
        Metrics::default().register(&registry, || 0).unwrap();
        assert!(Metrics::default().register(&registry, || 0).is_err());
    }
}
