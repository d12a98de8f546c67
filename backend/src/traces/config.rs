//! The traces' settings: the `OTEL_*` variables the ADOT collector's task
//! definition sets (infra's trace-collector), read with the rest of the
//! configuration.

use cognito_verifier::ConfigError;

/// Where OTLP/HTTP takes spans, below the endpoint's base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Which requests are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// The share of traces that start here, or that come without a decision, recorded.
    pub ratio: f64,
}

/// The traces' settings; `None` from [`TraceConfig::from_lookup`] turns them off.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces`: where the spans are sent.
    pub traces_url: String,
    /// `OTEL_SERVICE_NAME`: the service the spans name (X-Ray's segment name).
    pub service_name: String,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub sampling: Sampling,
}

impl TraceConfig {
    /// Reads the `OTEL_*` variables through `get`; the sampler's are checked even when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is unset (traces off), so a typo shows at once.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TraceConfig>, ConfigError> {
        let sampling = sampling(get)?;
        let service_name = get("OTEL_SERVICE_NAME").unwrap_or_else(|| "planb-backend".into());
        let Some(endpoint) = get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
            return Ok(None);
        };
        let base = endpoint.trim().trim_end_matches('/');
        let valid = base
            .parse::<hyper::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !valid {
            return Err(ConfigError::new(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("must be an http:// or https:// URL (the collector's OTLP/HTTP base), got {endpoint:?}"),
            ));
        }
        Ok(Some(TraceConfig {
            traces_url: format!("{base}{TRACES_PATH}"),
            service_name: service_name.trim().to_string(),
            sampling,
        }))
    }
}

fn sampling(get: &impl Fn(&str) -> Option<String>) -> Result<Sampling, ConfigError> {
    let ratio = match get("OTEL_TRACES_SAMPLER_ARG") {
        None => 1.0,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                return Err(ConfigError::new(
                    "OTEL_TRACES_SAMPLER_ARG",
                    format!(
                        "must be a number from 0 to 1 (the share of traces recorded), got {raw:?}"
                    ),
                ))
            }
        },
    };
    let sampler = get("OTEL_TRACES_SAMPLER");
    let ratio = match sampler.as_deref().map(str::trim) {
        None | Some("parentbased_traceidratio") => ratio,
        Some("parentbased_always_on") => 1.0,
        Some("parentbased_always_off") => 0.0,
        Some(other) => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                format!("must be parentbased_traceidratio, parentbased_always_on or parentbased_always_off, got {other:?}"),
            ))
        }
    };
    Ok(Sampling { ratio })
}
