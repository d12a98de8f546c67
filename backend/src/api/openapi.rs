//! The API's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! Each operation is described by a `#[utoipa::path]` annotation on its
//! handler and each body by a derive on the type the handler answers with;
//! [`ApiDoc`] lists the handlers. A test checks that every route the router
//! serves is in the document and every documented operation is routed, and
//! `testkit/e2e/test_openapi.py` runs schemathesis against a running backend.

use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use std::sync::OnceLock;
use utoipa::{OpenApi, ToSchema};

pub use cognito_verifier::openapi::{ErrorBody, SecuritySchemes, ALB_SESSION, BEARER};

use super::{handlers, logout, notes, page};

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

/// The API's description, from the annotated handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "planb-backend",
        description = "The Plan B API: every /api route needs a verified Cognito access token, \
                       from ALB1's sign-in or as a machine's bearer token. Refusals are JSON \
                       `{error, message}`.",
    ),
    paths(
        document,
        page::index,
        page::script,
        page::style,
        handlers::metrics,
        handlers::health,
        handlers::ready,
        handlers::me,
        handlers::admin,
        handlers::profile,
        logout::logout,
        notes::list,
        notes::get,
        notes::put,
        notes::delete,
    ),
    components(schemas(Status, Me, Admin)),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// `GET /openapi.json`: the document, rendered once.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn document() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default());
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_both_security_schemes() {
        let doc: serde_json::Value = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[ALB_SESSION]["in"], "header");
        assert_eq!(schemes[BEARER]["scheme"], "bearer");
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }
}
