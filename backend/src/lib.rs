//! planb-backend: verifies Cognito access tokens and serves the Plan B API.
//!
//! The module layout follows aws-jwt-verify's: one small module per concern.
//! - [`config`]: environment to a typed [`config::Config`]
//! - [`server`]: accept loop, connection cap, graceful shutdown; [`routes`]: method + path
//!   to handler; [`route`]: the route names
//! - [`auth`]: token from the request to a verified identity
//!   ([`auth::headers`] finding the token, [`auth::jose`] compact JWS helpers,
//!   [`auth::jwt`] parsing and claim rules, [`auth::jwks`] keys, [`auth::penalty`]
//!   fetch limits, [`auth::fetch`] bounded HTTP, [`auth::cache`] verified tokens,
//!   [`auth::identity`] the verified caller, [`auth::alb`] ALB data)
//! - [`error`]: the one rejection enum; [`metrics`]: Prometheus counters; [`logging`]
//! - [`notes`]: the per-user notes API on DynamoDB (`NOTES_TABLE`)

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod notes;
pub mod route;
pub mod routes;
pub mod server;

use std::sync::Arc;

use auth::fetch::Fetcher;
use auth::jwks::JwksCache;
use auth::Authenticator;
use config::Config;
use metrics::Metrics;
use routes::App;

/// Wires the app for `config`. Nothing is fetched yet: call
/// [`JwksCache::load`] on `app.jwks` (as [`server::run`] does).
pub fn build_app(config: &Config) -> Result<App, String> {
    let metrics = Arc::new(Metrics::default());
    let fetcher = Fetcher::new().map_err(|e| format!("HTTP client: {e}"))?;
    let jwks = Arc::new(JwksCache::new(
        config.jwks_url.clone(),
        fetcher.clone(),
        metrics.clone(),
    ));
    Ok(App {
        auth: Authenticator::new(config, jwks.clone(), fetcher, metrics.clone()),
        jwks,
        metrics,
        notes: notes::Notes::new(config.notes.as_ref())?,
    })
}
