//! The service's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! Each operation is a `#[utoipa::path]` annotation on its handler, each body
//! a `ToSchema` derive on its type; [`ApiDoc`] lists the handlers. A new
//! route adds its handler to that list.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::orders;

/// The security scheme of ALB1's sign-in: the user's access token in
/// `x-amzn-oidc-accesstoken`, with ALB's signed `x-amzn-oidc-data`.
pub const ALB_SESSION: &str = "albSession";
/// The security scheme of a machine's client-credentials token.
pub const BEARER: &str = "bearer";

/// Every refusal's body, as `cognito_verifier::json_error` writes it.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: refusals are written by `json_error`
pub struct ErrorBody {
    /// A stable code, e.g. `missing_scope` or `invalid_field`.
    error: String,
    /// A sentence for a person; never echoes what the client sent.
    message: String,
}

/// What the verifier refuses on every `/api` route.
#[derive(IntoResponses)]
#[allow(dead_code)] // a schema only: the verifier answers these
pub enum Refused {
    /// No token, or one that does not verify.
    #[response(status = 401, description = "No token, or one that does not verify")]
    Unauthorized(ErrorBody),
    /// The route's guard refused the caller.
    #[response(
        status = 403,
        description = "Not in the route's group, or a machine without its scope"
    )]
    Forbidden(ErrorBody),
    /// Keys that could not be fetched (or the service's own state is full).
    #[response(
        status = 503,
        description = "Not now: the signing keys could not be fetched, or the store is full"
    )]
    Unavailable(ErrorBody),
}

/// What `JsonBody` refuses: every way a body can be wrong.
#[derive(IntoResponses)]
#[allow(dead_code)] // a schema only: `JsonBody` answers these
pub enum BadBody {
    /// Not JSON (`invalid_json`), or a body that broke off (`unreadable_body`).
    #[response(status = 400, description = "Not JSON (`invalid_json`)")]
    NotJson(ErrorBody),
    /// Over the route's limit.
    #[response(
        status = 413,
        description = "Over the route's body limit (`body_too_large`)"
    )]
    TooLarge(ErrorBody),
    /// `Content-Type` missing or not JSON.
    #[response(
        status = 415,
        description = "Not `application/json` (`unsupported_media_type`)"
    )]
    NotJsonType(ErrorBody),
    /// A field missing, of the wrong type or out of range.
    #[response(
        status = 422,
        description = "A field missing or wrong, named (`missing_field`, `invalid_field`)"
    )]
    InvalidField(ErrorBody),
}

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
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// Adds the two ways a caller proves who it is.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ALB_SESSION,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-amzn-oidc-accesstoken",
                "Set by ALB1 after a Cognito sign-in, with x-amzn-oidc-data and \
                 x-amzn-oidc-identity; never sent by a client itself.",
            ))),
        );
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A Cognito access token; behind ALB1 only a machine's is accepted this way.",
            ));
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer.build()));
    }
}

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
