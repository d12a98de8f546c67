//! Method and path to handler, and every response the API gives.
//!
//! Every error is `{"error": CODE, "message": ...}`; 401s carry
//! `WWW-Authenticate: Bearer error="invalid_token"`. Nothing a client sends
//! reaches a panic or a 5xx: the only non-4xx error is `/ready`'s 503 before
//! the JWKS is loaded.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Method, Response, StatusCode};
use std::sync::Arc;

use crate::auth::jwks::JwksCache;
use crate::auth::{Authenticator, Verified};
use crate::error::Rejection;
use crate::metrics::Metrics;
pub use crate::route::Route;

/// What the handlers need, shared by every connection.
pub struct App {
    /// Verifies callers.
    pub auth: Authenticator,
    /// The pool's keys (for `/ready`).
    pub jwks: Arc<JwksCache>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The notes API (`/api/notes`, see [`crate::notes`]).
    pub notes: crate::notes::Notes,
}

/// The response body type.
pub type Body = Full<Bytes>;

/// `HeaderValue::from_static` is const and copies nothing: these cost nothing per call.
fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

fn bearer_invalid() -> HeaderValue {
    HeaderValue::from_static("Bearer error=\"invalid_token\"")
}

/// Answers one request and counts it.
pub async fn handle(app: &App, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
    let route = Route::of(path);
    let resp = match (route, method) {
        (Route::Other, _) => reject(Rejection::NotFound),
        (_, &Method::GET) => dispatch(app, route, headers).await,
        _ => {
            let mut r = reject(Rejection::MethodNotAllowed);
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            r
        }
    };
    app.metrics.request(route, resp.status().as_u16());
    resp
}

async fn dispatch(app: &App, route: Route, headers: &HeaderMap) -> Response<Body> {
    match route {
        Route::Health => json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}")),
        Route::Ready if app.jwks.is_loaded() => json(
            StatusCode::OK,
            Bytes::from_static(b"{\"status\":\"ready\"}"),
        ),
        Route::Ready => json(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(
                b"{\"error\":\"not_ready\",\"message\":\"the signing keys are not loaded yet\"}",
            ),
        ),
        Route::Metrics => {
            let mut text = app.metrics.render(app.auth.cached_tokens());
            app.notes.render_metrics(&mut text);
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        Route::Me | Route::Admin | Route::Profile => match app.auth.authenticate(headers).await {
            Ok(who) => protected(route, &who),
            Err(why) => {
                app.metrics.failure(why);
                tracing::debug!(
                    reason = why.code(),
                    route = route.label(),
                    "request refused"
                );
                reject(why)
            }
        },
        Route::Other => reject(Rejection::NotFound),
    }
}

/// The protected routes, for a verified caller.
fn protected(route: Route, who: &Verified) -> Response<Body> {
    match route {
        Route::Admin if !who.admin => reject(Rejection::MissingGroup),
        Route::Admin => json(
            StatusCode::OK,
            Bytes::from(serde_json::json!({"sub": who.sub, "admin": true}).to_string()),
        ),
        Route::Profile if !who.profile => reject(Rejection::MissingScope),
        // /api/profile and /api/me share the body: the caller's identity.
        _ => json(StatusCode::OK, who.me_body.clone()),
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, json_type());
    r
}

/// `{"error": code, "message": message}` with `status`.
pub fn error_json(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    json(status, Bytes::from(body))
}

/// The JSON error response for `why`.
pub fn reject(why: Rejection) -> Response<Body> {
    let status = StatusCode::from_u16(why.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = error_json(status, why.code(), why.message());
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(WWW_AUTHENTICATE, bearer_invalid());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_json_and_401s_say_invalid_token() {
        let r = reject(Rejection::Expired);
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let r = reject(Rejection::MissingGroup);
        assert_eq!(r.status(), 403);
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
