//! The service's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! Each operation is a `#[utoipa::path]` annotation on its handler, each body
//! a `ToSchema` derive on its type; [`ApiDoc`] lists the handlers. A new
//! route adds its handler to that list.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::OpenApi;

pub use cognito_verifier::openapi::{
    BadBody, ErrorBody, Refused, SecuritySchemes, ALB_SESSION, BEARER,
};

use crate::orders;

/// The service's description, from the annotated handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "team-service",
        description = "A team's orders API behind planb. Every /api route needs a verified \
                       Cognito access token; refusals are JSON `{error, message}`."
    ),
    paths(
        document,
        crate::health,
        crate::ready,
        orders::place,
        orders::get,
        orders::set_status
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// `GET /openapi.json`: this document, rendered once.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn document() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the document serialises")
    });
    ([(CONTENT_TYPE, "application/json")], json.as_str())
}
