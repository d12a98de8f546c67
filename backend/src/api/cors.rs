//! Cross-origin calls, only from the origins `CORS_ALLOWED_ORIGINS` names.
//! Unset, the API is same-origin only: no CORS headers at all, and a preflight
//! from any origin is refused. ALB lets `OPTIONS` through unauthenticated, so
//! the preflight is answered here, before any route's authentication
//! ([`super::front_door`] calls these on every request).

use axum::response::{IntoResponse, Response};
use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use hyper::{Method, StatusCode};

use super::app::App;
use super::error::ApiError;

/// The request's `Origin`, when it is one of the allowed ones.
pub fn allowed_origin(app: &App, headers: &HeaderMap) -> Option<HeaderValue> {
    if app.cors_allowed_origins.is_empty() {
        return None;
    }
    let origin = headers.get(ORIGIN)?;
    let text = origin.to_str().ok()?;
    app.cors_allowed_origins
        .iter()
        .any(|o| o == text)
        .then(|| origin.clone())
}

/// Whether a request with `method` and `headers` is a CORS preflight
/// (answered here, never routed).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight from `origin` (`None`: not an allowed one).
pub fn preflight(origin: Option<HeaderValue>) -> Response {
    let Some(origin) = origin else {
        return ApiError::OriginNotAllowed.into_response();
    };
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    allow(h, origin);
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, PUT, DELETE"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, if-match"),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    r
}

/// Marks a route's answer to an allowed `origin` as readable by it.
pub fn mark(r: &mut Response, origin: HeaderValue) {
    let h = r.headers_mut();
    allow(h, origin);
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("etag"),
    );
}

/// What marks any answer (preflight or not) as allowed for `origin`: the
/// origin echoed, credentials allowed, and `Vary: origin` added to whatever
/// the route varies on, since another origin gets another answer.
fn allow(h: &mut HeaderMap, origin: HeaderValue) {
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(VARY, HeaderValue::from_static("origin"));
}
