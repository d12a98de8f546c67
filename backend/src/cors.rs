//! Cross-origin calls, only from the origins `CORS_ALLOWED_ORIGINS` names:
//! the setting, and tower-http's [`CorsLayer`] built from it.
//!
//! Unset, the API is same-origin only: no CORS headers at all, and a preflight
//! from any origin is refused with a JSON 403. ALB lets `OPTIONS` through
//! unauthenticated, so the preflight is answered by these layers, before any
//! route's verifier.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use cognito_verifier::{json_error, ConfigError};
use futures_util::future::{BoxFuture, Either};
use hyper::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE, ETAG,
    IF_MATCH, ORIGIN,
};
use hyper::{Method, StatusCode};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The methods a cross-origin script may use: every method a route may take.
pub const ALLOWED_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The request headers a cross-origin script may send: the bearer token, a
/// JSON body's type, and the notes' conditional writes.
pub const ALLOWED_HEADERS: [HeaderName; 3] = [AUTHORIZATION, CONTENT_TYPE, IF_MATCH];

/// How long a browser may keep a preflight's answer.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// `CORS_ALLOWED_ORIGINS`: the other origins whose scripts may call the API
/// (empty: same origin only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsSettings {
    origins: Vec<HeaderValue>,
}

impl CorsSettings {
    /// Reads `CORS_ALLOWED_ORIGINS` through `get` (empty values already count as unset).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<CorsSettings, ConfigError> {
        let origins = match get("CORS_ALLOWED_ORIGINS") {
            Some(raw) => parse_origins(&raw)?,
            None => Vec::new(),
        };
        Ok(CorsSettings { origins })
    }

    /// The allowed origins, as a browser sends them in `Origin`.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().filter_map(|o| o.to_str().ok())
    }

    /// Whether `origin` is one of the allowed ones.
    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins.contains(origin)
    }

    /// The layer that answers allowed preflights and marks the answers to
    /// allowed origins (origin echoed, credentials allowed, `ETag` readable);
    /// `None` when no origin is allowed, as a same-origin API needs no CORS
    /// headers and [`RefuseOtherOrigins`] refuses every preflight. Every
    /// request clones the layer's settings, so it is left out when unused.
    pub fn layer(&self) -> Option<CorsLayer> {
        if self.origins.is_empty() {
            return None;
        }
        let layer = CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.origins.iter().cloned()))
            .allow_methods(ALLOWED_METHODS)
            .allow_headers(ALLOWED_HEADERS)
            .allow_credentials(true)
            .expose_headers([ETAG])
            .max_age(MAX_AGE);
        Some(layer)
    }
}

/// In front of [`CorsSettings::layer`]: a preflight from an origin not
/// allowed gets a JSON 403 naming the setting (tower-http would answer it
/// 200 without CORS headers, which a person reading the network tab cannot
/// tell from success); an allowed one gets its answer as a 204, having no body.
/// A tower layer rather than `from_fn`: every other request goes straight to
/// the inner service's own future, with no box and no clone of the route.
#[derive(Clone)]
pub struct RefuseOtherOrigins {
    cors: Arc<CorsSettings>,
}

impl RefuseOtherOrigins {
    /// The layer for the origins `cors` allows.
    pub fn new(cors: Arc<CorsSettings>) -> RefuseOtherOrigins {
        RefuseOtherOrigins { cors }
    }
}

impl<S> Layer<S> for RefuseOtherOrigins {
    type Service = PreflightGuard<S>;

    fn layer(&self, inner: S) -> PreflightGuard<S> {
        PreflightGuard {
            inner,
            cors: self.cors.clone(),
        }
    }
}

/// The service [`RefuseOtherOrigins`] wraps around `S`.
#[derive(Clone)]
pub struct PreflightGuard<S> {
    inner: S,
    cors: Arc<CorsSettings>,
}

impl<S> Service<Request> for PreflightGuard<S>
where
    S: Service<Request, Response = Response>,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            return Either::Left(self.inner.call(req));
        }
        if !req
            .headers()
            .get(ORIGIN)
            .is_some_and(|o| self.cors.allows(o))
        {
            let refusal = json_error(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this origin is not in CORS_ALLOWED_ORIGINS",
            );
            return Either::Right(Box::pin(std::future::ready(Ok(refusal))));
        }
        let answer = self.inner.call(req);
        Either::Right(Box::pin(async move {
            let mut answer = answer.await?;
            if answer.status() == StatusCode::OK {
                *answer.status_mut() = StatusCode::NO_CONTENT;
            }
            Ok(answer)
        }))
    }
}

/// `scheme://host[:port]` origins, comma separated, exactly as a browser sends `Origin`.
fn parse_origins(raw: &str) -> Result<Vec<HeaderValue>, ConfigError> {
    raw.split(',')
        .map(|o| {
            let o = o.trim();
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '*']) => {
                    HeaderValue::from_str(o).map_err(|_| not_an_origin())
                }
                _ => Err(not_an_origin()),
            }
        })
        .collect()
}

fn not_an_origin() -> ConfigError {
    ConfigError::new(
        "CORS_ALLOWED_ORIGINS",
        "must be comma-separated origins such as https://app.example.com (no path, no wildcard)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Result<CorsSettings, ConfigError> {
        CorsSettings::from_lookup(&|k| (k == "CORS_ALLOWED_ORIGINS").then(|| raw.to_string()))
    }

    #[test]
    fn origins_are_read_exactly_and_anything_else_is_refused_by_name() {
        let c = read("https://a.example.com, http://127.0.0.1:3000").unwrap();
        assert_eq!(
            c.origins().collect::<Vec<_>>(),
            ["https://a.example.com", "http://127.0.0.1:3000"]
        );
        for bad in [
            "*",
            "https://a.example/path",
            "a.example.com",
            "https://",
            "https://a b",
        ] {
            assert_eq!(read(bad).unwrap_err().var, "CORS_ALLOWED_ORIGINS", "{bad}");
        }
        assert_eq!(
            CorsSettings::from_lookup(&|_| None)
                .unwrap()
                .origins()
                .count(),
            0
        );
    }
}
