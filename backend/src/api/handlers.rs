//! The handlers of the built-in routes: health, readiness, metrics, and the
//! caller's identity behind the verifier.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderValue, CONTENT_TYPE};

use super::app::App;
use super::error::ApiError;
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
pub async fn health() -> Response {
    json(&b"{\"status\":\"ok\"}"[..])
}

/// `GET /ready`: 200 once the pool's keys are loaded.
pub async fn ready(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    if app.auth.keys_loaded() {
        Ok(json(&b"{\"status\":\"ready\"}"[..]))
    } else {
        Err(ApiError::NotReady)
    }
}

/// `GET /metrics`: every counter as Prometheus text.
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

/// `GET /api/me` (and `/api/profile`): the caller's identity, serialised when its token was verified.
pub async fn me(Caller(who): Caller) -> Response {
    json(who.json.clone())
}

/// `GET /api/admin`: the route's guard admitted only the admin group.
pub async fn admin(Caller(who): Caller) -> Response {
    json(serde_json::json!({"sub": &*who.sub, "admin": true}).to_string())
}
