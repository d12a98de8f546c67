//! What an OpenAPI document of a service behind the verifier shares (the
//! `openapi` feature, on utoipa): the two ways a caller proves who it is, the
//! JSON error body, and the refusals of the verifier and of [`JsonBody`].
//!
//! ```
//! use cognito_verifier::openapi::{Refused, SecuritySchemes, ALB_SESSION};
//! use utoipa::OpenApi;
//!
//! /// Who the caller is.
//! #[utoipa::path(get, path = "/whoami", security(("albSession" = []), ("bearer" = [])),
//!     responses((status = 200, description = "The caller's sub", body = String), Refused))]
//! async fn whoami() {}
//!
//! #[derive(OpenApi)]
//! #[openapi(paths(whoami), modifiers(&SecuritySchemes))]
//! struct ApiDoc;
//!
//! let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
//! assert_eq!(doc["components"]["securitySchemes"][ALB_SESSION]["in"], "header");
//! assert!(doc["paths"]["/whoami"]["get"]["responses"]["401"].is_object());
//! ```
//!
//! [`JsonBody`]: crate::JsonBody

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{IntoResponses, Modify, ToSchema};

/// The security scheme of ALB's sign-in: the user's access token in
/// `x-amzn-oidc-accesstoken`, with ALB's signed `x-amzn-oidc-data`.
pub const ALB_SESSION: &str = "albSession";
/// The security scheme of a bearer token (a machine's client credentials).
pub const BEARER: &str = "bearer";

/// Every refusal's body, as [`json_error`](crate::json_error) writes it.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: `json_error` writes these
pub struct ErrorBody {
    /// A stable, machine-readable code, e.g. `token_expired` or `invalid_field`.
    error: String,
    /// A sentence for a person; never echoes what the client sent.
    message: String,
}

/// What the verifier refuses on a guarded route.
#[derive(IntoResponses)]
#[allow(dead_code)] // a schema only: the verifier answers these
pub enum Refused {
    /// No token, or one that does not verify.
    #[response(status = 401, description = "No token, or one that does not verify")]
    Unauthorized(ErrorBody),
    /// The route's guard refused the caller.
    #[response(
        status = 403,
        description = "Not in the route's group, or without its scope (`missing_group`, `missing_scope`)"
    )]
    Forbidden(ErrorBody),
    /// The signing keys could not be fetched for now.
    #[response(
        status = 503,
        description = "The signing keys could not be fetched for now (`*_unavailable`)"
    )]
    Unavailable(ErrorBody),
}

/// What [`JsonBody`](crate::JsonBody) refuses: every way a body can be wrong.
#[derive(IntoResponses)]
#[allow(dead_code)] // a schema only: `JsonBody` answers these
pub enum BadBody {
    /// Not JSON, or a body that broke off.
    #[response(
        status = 400,
        description = "Not JSON (`invalid_json`, `unreadable_body`)"
    )]
    NotJson(ErrorBody),
    /// The body took too long.
    #[response(status = 408, description = "The body took over 10 s (`body_timeout`)")]
    Timeout(ErrorBody),
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
    /// A field missing or wrong.
    #[response(
        status = 422,
        description = "A field missing or wrong, named (`missing_field`, `invalid_field`)"
    )]
    InvalidField(ErrorBody),
}

/// Adds [`ALB_SESSION`] and [`BEARER`] to a document's security schemes, and
/// [`ErrorBody`] to its schemas: `#[openapi(modifiers(&SecuritySchemes))]`.
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ALB_SESSION,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-amzn-oidc-accesstoken",
                "Set by the load balancer after a Cognito sign-in, with x-amzn-oidc-data \
                 (its signed claims) and x-amzn-oidc-identity; never sent by a client itself.",
            ))),
        );
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A Cognito access token; with the ALB check on, only a machine's \
                 (client credentials) is accepted this way.",
            ));
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer.build()));
        let (name, schema) = (
            <ErrorBody as utoipa::ToSchema>::name(),
            <ErrorBody as utoipa::PartialSchema>::schema(),
        );
        components.schemas.insert(name.into_owned(), schema);
    }
}
