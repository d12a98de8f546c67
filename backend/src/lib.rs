//! planb-backend: verifies Cognito access tokens and serves the Plan B API.
//!
//! The module layout follows aws-jwt-verify's: one small module per concern.
//! Verification is the `cognito-verifier` crate's, used through its public
//! API as any team's service would.
//! - [`config`]: environment to a typed [`config::Config`]
//! - [`api`]: the route table and the front door every request goes through
//! - [`server`]: accept loop, connection cap, graceful shutdown
//! - [`notes`]: the per-user notes domain on DynamoDB (`NOTES_TABLE`)
//! - [`metrics`]: the service's counters beside the verifier's; [`logging`]

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod notes;
pub mod server;
