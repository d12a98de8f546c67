//! The static page at `GET /` (who you are, your notes, sign out), compiled
//! into the binary. Loading it needs no token; its script calls the API with
//! the session ALB holds. Same origin only, under a strict CSP.

use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

/// Nothing but this origin's own script, style, images and API.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                       img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

/// `GET /`.
#[utoipa::path(get, path = "/", tag = "page",
    responses((status = 200, description = "The page", content_type = "text/html")))]
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /app.js`.
#[utoipa::path(get, path = "/app.js", tag = "page",
    responses((status = 200, description = "The page's script", content_type = "text/javascript")))]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /app.css`.
#[utoipa::path(get, path = "/app.css", tag = "page",
    responses((status = 200, description = "The page's style", content_type = "text/css")))]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}
