//! The handlers of the built-in routes: health, readiness, metrics, and the
//! caller's identity behind the verifier.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderValue, CONTENT_TYPE};

use super::app::App;
use super::error::ApiError;
use super::schemas::{Admin, Me, Status};
use cognito_verifier::openapi::{ErrorBody, Refused};
use cognito_verifier::Caller;

/// A 200 with a JSON `body`. Built directly rather than from a
/// `([(name, value)], body)` tuple: `/api/me` is the hot path, and the tuple's
/// conversion goes through axum's `IntoResponseParts` per header.
fn json(body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /health`: liveness, no network.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "The process is up", body = Status)))]
pub async fn health() -> Response {
    json(&b"{\"status\":\"ok\"}"[..])
}

/// `GET /ready`: 200 once the pool's keys are loaded.
#[utoipa::path(get, path = "/ready", tag = "meta", responses(
    (status = 200, description = "The signing keys are loaded", body = Status),
    (status = 503, description = "Not yet", body = ErrorBody)))]
pub async fn ready(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    if app.auth.keys_loaded() {
        Ok(json(&b"{\"status\":\"ready\"}"[..]))
    } else {
        Err(ApiError::NotReady)
    }
}

/// `GET /metrics`: every counter as Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses(
    (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render();
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

/// `GET /api/me`: the caller's identity, serialised when its token was verified.
#[utoipa::path(get, path = "/api/me", tag = "identity",
    security(("albSession" = []), ("bearer" = [])),
    responses((status = 200, description = "The verified caller", body = Me),
        (status = 401, description = "No token, or one that does not verify", body = ErrorBody),
        (status = 503, description = "The signing keys could not be fetched for now", body = ErrorBody)))]
pub async fn me(Caller(who): Caller) -> Response {
    json(who.json.clone())
}

/// `GET /api/profile`: the caller's identity, for a token with the profile scope.
#[utoipa::path(get, path = "/api/profile", tag = "identity",
    security(("albSession" = []), ("bearer" = [])),
    responses((status = 200, description = "The verified caller", body = Me),
        Refused))]
pub async fn profile(caller: Caller) -> Response {
    me(caller).await
}

/// `GET /api/admin`: the route's guard admitted only the admin group.
#[utoipa::path(get, path = "/api/admin", tag = "identity",
    security(("albSession" = []), ("bearer" = [])),
    responses((status = 200, description = "The caller is an admin", body = Admin),
        Refused))]
pub async fn admin(Caller(who): Caller) -> Response {
    json(serde_json::json!({"sub": &*who.sub, "admin": true}).to_string())
}
