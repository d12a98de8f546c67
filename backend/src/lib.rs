//! planb-backend: verifies Cognito access tokens and serves the Plan B API.
//!
//! The module layout follows aws-jwt-verify's: one small module per concern.
//! - [`config`]: environment to a typed [`config::Config`]
//! - [`auth`]: token from the request to a verified [`auth::Identity`]
//!   ([`auth::headers`] finding the token, [`auth::jose`] compact JWS helpers,
//!   [`auth::jwt`] parsing and claim rules, [`auth::jwks`] keys, [`auth::penalty`]
//!   fetch limits, [`auth::fetch`] bounded HTTP, [`auth::cache`] verified tokens,
//!   [`auth::alb`] ALB data), and [`auth::layer`]: the verifier as a tower layer
//!   and axum extractor for any service
//! - [`api`]: the route table and the front door every request goes through
//! - [`server`]: accept loop, connection cap, graceful shutdown
//! - [`notes`]: the per-user notes domain on DynamoDB (`NOTES_TABLE`)
//! - [`error`]: the verification refusals and the one JSON error response;
//!   [`metrics`]: every counter; [`logging`]

#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod notes;
pub mod server;
