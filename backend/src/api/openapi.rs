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
use utoipa::OpenApi;

pub use cognito_verifier::openapi::{ErrorBody, SecuritySchemes, ALB_SESSION, BEARER};

use super::schemas::{Admin, Me, Status};
use super::{handlers, logout, notes, page};

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
