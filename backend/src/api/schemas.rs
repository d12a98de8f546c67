//! The shapes of the answers the handlers write themselves (bytes or
//! `json!`), for the OpenAPI document; every refusal's is
//! `cognito_verifier::openapi::ErrorBody`. A leaf: the handlers and
//! [`super::openapi`] both read it.

use utoipa::ToSchema;

/// The answer of `/health` and `/ready`.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the handlers write these bytes directly
pub struct Status {
    /// `ok` or `ready`.
    status: String,
}

/// Who the verified caller is (`GET /api/me`).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the verifier serialises the caller once per token
pub struct Me {
    /// The user's id, or the client id for a machine.
    sub: String,
    /// The user's name; `null` for a machine.
    username: Option<String>,
    /// The app client the token was issued to.
    client_id: String,
    /// `user` or `machine`.
    kind: String,
    /// The token's OAuth scopes.
    scope: Vec<String>,
    /// The caller's Cognito groups.
    groups: Vec<String>,
    /// When the token expires, seconds since the epoch.
    exp: f64,
}

/// The answer of `GET /api/admin`.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the handler builds it with `json!`
pub struct Admin {
    /// The caller's `sub`.
    sub: String,
    /// Always `true`: only the admin group gets here.
    admin: bool,
}
