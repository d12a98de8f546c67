//! planb-backend: verifies Cognito access tokens and serves the Plan B API.
//!
//! The module layout follows aws-jwt-verify's: one small module per concern.
//! Verification is the `cognito-verifier` crate's, used through its public
//! API as any team's service would.
//! - [`config`]: environment to a typed [`config::Config`]
//! - [`api`]: the routes, and the middleware every request goes through
//! - [`cors`]: `CORS_ALLOWED_ORIGINS` and the CORS layer
//! - [`server`]: accept loop, connection cap, graceful shutdown
//! - [`notes`]: the per-user notes domain on DynamoDB (`NOTES_TABLE`)
//! - [`metrics`]: the service's counters beside the verifier's; [`logging`]
//! - [`traces`]: spans to X-Ray through an OpenTelemetry collector (`OTEL_*`)

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod cors;
pub mod logging;
pub mod metrics;
pub mod notes;
pub mod server;
pub mod traces;

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_metrics_table_lists_exactly_the_series_registered() {
        let readme = include_str!("../README.md");
        let mut got: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `planb_"))
            .filter_map(|l| l.split_once('`').map(|(n, _)| n))
            .collect();
        let mut want: Vec<&str> = crate::server::SERIES
            .iter()
            .chain([
                &crate::api::requests::SERIES,
                &crate::notes::metrics::SERIES,
            ])
            .chain(cognito_verifier::METRICS.iter())
            .map(|(n, _)| *n)
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "backend/README.md's metrics table");
    }
}
