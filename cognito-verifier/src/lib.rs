//! Verifies the callers of an axum (or any tower) service behind Amazon
//! Cognito, as strictly as AWS's own `aws-jwt-verify`: Cognito access tokens
//! (RS256, against each user pool's JWKS) and, behind an Application Load
//! Balancer that signs users in, ALB's signed `x-amzn-oidc-data` (ES256).
//!
//! # Guarding routes
//!
//! Build a [`VerifierConfig`] (in code, or [`VerifierConfig::from_env`]), make
//! a [`Verifier`], load its keys in the background, and put an [`AuthLayer`]
//! on the routes that need a verified caller. A handler takes the caller with
//! the [`Caller`] extractor; a refusal never reaches it, and is answered as
//! JSON: `{"error": code, "message": sentence}`, 401 for a token that does
//! not verify, 403 for a guard's refusal, 503 when the signing keys cannot
//! be fetched for now ([`Rejection`] lists every code).
//!
//! ```
//! use std::sync::Arc;
//! use axum::{body::Body, http::Request, routing::get, Router};
//! use cognito_verifier::{AuthLayer, Caller, UserPool, Verifier, VerifierConfig};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::builder()
//!     .user_pool(UserPool::new("eu-west-1_AbC123", ["webclient"])?)
//!     .build()?;
//! let registry = prometheus::Registry::new();
//! let verifier = Arc::new(Verifier::with_registry(config, &registry)?);
//! tokio::spawn({
//!     let verifier = verifier.clone();
//!     async move { verifier.load_keys().await }
//! });
//!
//! let app = Router::new()
//!     .route("/whoami", get(|Caller(who): Caller| async move { who.sub.to_string() }))
//!     .route_layer(AuthLayer::new(verifier.clone()))
//!     .route(
//!         "/reports",
//!         get(|| async { "for admins" }).route_layer(AuthLayer::new(verifier).group("admins")),
//!     )
//!     .route("/health", get(|| async { "ok" }));
//!
//! // No token: refused before the handler, with the code that names why.
//! let response = app
//!     .oneshot(Request::get("/whoami").body(Body::empty())?)
//!     .await?;
//! assert_eq!(response.status(), 401);
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert!(body.starts_with(br#"{"error":"missing_token""#));
//! # Ok(()) }
//! ```
//!
//! # Where the token comes from
//!
//! From `x-amzn-oidc-accesstoken` (ALB's sign-in puts the user's access
//! token there) or `Authorization: Bearer` (a machine with the
//! client-credentials grant, or a caller behind ALB's JWT validation); both
//! at once, or either twice, is refused. With [`AlbConfig`] set, a token
//! from ALB's sign-in must come with ALB's signed data for the same user,
//! and a user's token sent as a bearer token is refused: only a machine's
//! token may come without it.
//!
//! # Guards
//!
//! [`AuthLayer::group`] (a Cognito group), [`AuthLayer::scope`] (an OAuth
//! scope) and [`AuthLayer::machine_scope`] (a scope a machine caller needs;
//! a user's access token carries no resource-server scopes, its sign-in is
//! the grant) refuse with 403 `missing_group` / `missing_scope`.
//!
//! # Request bodies
//!
//! A handler takes its JSON body with [`JsonBody`]: read up to the route's
//! limit ([`DEFAULT_BODY_LIMIT`], 25 KiB, unless the type names another),
//! `Content-Type` checked, and every way a body can be wrong answered in the
//! same JSON error format with a code that names it (`invalid_json`,
//! `missing_field`, `invalid_field`, `unsupported_media_type`,
//! `body_too_large`), never a 500.
//!
//! # OpenAPI
//!
//! With the `openapi` feature, [`openapi`] has what a service's utoipa
//! document shares: the two security schemes, the error body, and the
//! refusals of the verifier and of [`JsonBody`] as reusable responses.
//!
//! # Several user pools
//!
//! Add each with [`VerifierConfigBuilder::user_pool`]: a token is verified
//! with the keys of the pool its `iss` names, and a token from any other
//! issuer is refused (`wrong_issuer`). [`Identity::issuer`] says which pool.
//!
//! # Limits
//!
//! Every cache and queue is bounded in bytes
//! ([`VerifierConfig::max_cache_bytes`]): the verified-token cache, and for
//! each key source (a pool's JWKS, ALB's keys) the `kid`s refused without a
//! fetch, the fetches waiting and the keys kept. A key source is fetched at
//! most once a second, one fetch per key at a time, a request waiting at
//! most three seconds for its fetch to start; a `kid` the source does not
//! know is not asked for again for 10 seconds; kept keys are fetched again
//! once an hour old. A fetch that failed for now (5xx, timeout, connection)
//! answers 503 and is retried at the normal rate.
//!
//! # The access line
//!
//! [`access_log`], layered on the router, writes one log event per request
//! (target `access`): the method, the route pattern, the status, the
//! duration, the trace id ALB started, the verified caller's `sub`, kind,
//! client id and username, or the refusal's code; never a token, a cookie
//! or a body. [`AccessLine`] writes the same line from a service's own
//! middleware.
//!
//! # Metrics
//!
//! [`Verifier::with_registry`] registers the counters listed in [`METRICS`]
//! in a `prometheus::Registry` the application owns (and renders on its own
//! `/metrics`); give the registry a prefix with `Registry::new_custom`.

#![warn(missing_docs)]

mod access;
mod alb;
mod alb_keys;
mod body;
mod cache;
mod config;
mod fetch;
mod fetch_queue;
mod headers;
mod identity;
mod jose;
mod jwks;
mod jwt;
mod kept_keys;
mod key_fetch;
mod layer;
mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
mod penalty;
mod rejection;
mod verifier;

pub use access::{access_log, AccessLine, ACCESS_TARGET, UNMATCHED_ROUTE};
pub use body::{BodyRejection, JsonBody, BODY_TIMEOUT, DEFAULT_BODY_LIMIT};
pub use config::{AlbConfig, ConfigError, UserPool, VerifierConfig, VerifierConfigBuilder};
pub use identity::{CallerKind, Identity};
pub use layer::{AuthFuture, AuthLayer, AuthService, Caller, Guard};
pub use metrics::METRICS;
pub use rejection::{json_error, ErrorCode, Rejection};
pub use verifier::{SetupError, Verifier};
