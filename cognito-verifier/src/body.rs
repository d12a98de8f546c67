//! JSON request bodies answered as the API's own errors.
//!
//! [`JsonBody`] is the extractor a handler takes its JSON body with: it reads
//! at most its limit, checks the `Content-Type`, deserialises, and turns every
//! way a body can be wrong into a [`json_error`] whose code names it, never a
//! 500 and never `text/plain`. A message names at most the field's path (the
//! names in the handler's own type), never a value the client sent.
//!
//! | status | `error` | when |
//! |---|---|---|
//! | 400 | `invalid_json` | not JSON (a syntax error, or the body ends early) |
//! | 400 | `unreadable_body` | the body could not be read (the client went away) |
//! | 408 | `body_timeout` | the body took longer than [`BODY_TIMEOUT`] to arrive |
//! | 413 | `body_too_large` | over the route's limit (by `Content-Length`, or as read) |
//! | 415 | `unsupported_media_type` | `Content-Type` missing or not `application/json` (or `application/*+json`) |
//! | 422 | `missing_field` | a required field is absent |
//! | 422 | `invalid_field` | a field (or the whole body) has the wrong type or value |
//!
//! Requiring the JSON `Content-Type` also keeps a cross-site HTML form out: a
//! browser sends `application/json` across origins only after a CORS preflight.

use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use std::fmt;

use crate::rejection::json_error;

/// The body limit of a [`JsonBody`] unless the route names its own: 25 KiB,
/// what a service's memory budget assumes for the body of each connection.
pub const DEFAULT_BODY_LIMIT: usize = 25 * 1024;

/// The longest a body may take to arrive: a client that sends it slowly
/// holds a connection and a buffer, so it is cut off.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest field path a message repeats; a longer one is cut (a path
/// through maps carries the client's keys).
const MAX_PATH_CHARS: usize = 120;

/// A JSON request body deserialised into `T`, read up to `LIMIT` bytes
/// (default [`DEFAULT_BODY_LIMIT`]); every refusal is a [`BodyRejection`].
///
/// Name a route's own limit in the type: `JsonBody<Upload, { 64 * 1024 }>`.
/// (axum's `DefaultBodyLimit` does not apply: the limit is this one.)
///
/// ```
/// use axum::{body::Body, http::Request, routing::post, Router};
/// use cognito_verifier::JsonBody;
/// use serde::Deserialize;
/// use tower::ServiceExt;
///
/// #[derive(Deserialize)]
/// struct NewOrder {
///     item: String,
///     quantity: u32,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = Router::new().route(
///     "/orders",
///     post(|JsonBody(order): JsonBody<NewOrder, 4096>| async move {
///         format!("{} x {}", order.quantity, order.item)
///     }),
/// );
/// let post = |body: &'static str| {
///     Request::post("/orders")
///         .header("content-type", "application/json")
///         .body(Body::from(body))
/// };
///
/// let ok = app.clone().oneshot(post(r#"{"item": "tea", "quantity": 2}"#)?).await?;
/// assert_eq!(ok.status(), 200);
///
/// let missing = app.oneshot(post(r#"{"item": "tea"}"#)?).await?;
/// assert_eq!(missing.status(), 422);
/// let body = axum::body::to_bytes(missing.into_body(), 1024).await?;
/// assert_eq!(
///     &body[..],
///     br#"{"error":"missing_field","message":"missing field `quantity`"}"#
/// );
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T, const LIMIT: usize = DEFAULT_BODY_LIMIT>(pub T);

impl<T, S, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, _state: &S) -> Result<Self, BodyRejection> {
        if !is_json(req.headers()) {
            return Err(BodyRejection::UnsupportedMediaType);
        }
        if declared_length(req.headers()).is_some_and(|n| n > LIMIT as u64) {
            return Err(BodyRejection::TooLarge { limit: LIMIT });
        }
        let bytes = read(req, LIMIT).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Why a [`JsonBody`] was refused; answered as [`json_error`] with
/// [`Self::status`] and [`Self::code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRejection {
    /// `Content-Type` is missing or not JSON (415 `unsupported_media_type`).
    UnsupportedMediaType,
    /// The body is over `limit` bytes (413 `body_too_large`).
    TooLarge {
        /// The route's limit in bytes.
        limit: usize,
    },
    /// The body could not be read to its end (400 `unreadable_body`).
    Unreadable,
    /// The body took longer than [`BODY_TIMEOUT`] (408 `body_timeout`).
    Timeout,
    /// Not JSON: a syntax error or an early end (400 `invalid_json`).
    InvalidJson {
        /// Where the error is, 1-based.
        line: usize,
        /// Where the error is, 1-based.
        column: usize,
    },
    /// A required field is absent (422 `missing_field`).
    MissingField {
        /// The field's path, e.g. `address.city`.
        path: String,
    },
    /// A field, or the body as a whole (path `.`), has the wrong type or
    /// value (422 `invalid_field`).
    InvalidField {
        /// The field's path, e.g. `items[2].quantity`.
        path: String,
    },
}

impl BodyRejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyRejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyRejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRejection::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyRejection::Unreadable | BodyRejection::InvalidJson { .. } => {
                StatusCode::BAD_REQUEST
            }
            BodyRejection::MissingField { .. } | BodyRejection::InvalidField { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        }
    }

    /// The stable code sent as `error`.
    pub fn code(&self) -> &'static str {
        match self {
            BodyRejection::UnsupportedMediaType => "unsupported_media_type",
            BodyRejection::TooLarge { .. } => "body_too_large",
            BodyRejection::Unreadable => "unreadable_body",
            BodyRejection::Timeout => "body_timeout",
            BodyRejection::InvalidJson { .. } => "invalid_json",
            BodyRejection::MissingField { .. } => "missing_field",
            BodyRejection::InvalidField { .. } => "invalid_field",
        }
    }
}

impl fmt::Display for BodyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyRejection::UnsupportedMediaType => {
                f.write_str("the body must be JSON, sent with Content-Type: application/json")
            }
            BodyRejection::TooLarge { limit } => {
                write!(f, "the body is larger than this route's {limit} bytes")
            }
            BodyRejection::Unreadable => f.write_str("the body could not be read to its end"),
            BodyRejection::Timeout => f.write_str("the request body did not arrive in time"),
            BodyRejection::InvalidJson { line, column } => {
                write!(
                    f,
                    "the body is not valid JSON (line {line}, column {column})"
                )
            }
            BodyRejection::MissingField { path } => write!(f, "missing field `{path}`"),
            BodyRejection::InvalidField { path } if path == "." => {
                f.write_str("the body has the wrong type (expected another JSON value)")
            }
            BodyRejection::InvalidField { path } => {
                write!(f, "field `{path}` has the wrong type or value")
            }
        }
    }
}

impl std::error::Error for BodyRejection {}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        json_error(self.status(), self.code(), &self.to_string())
    }
}

/// Whether `Content-Type` is `application/json` or `application/*+json`
/// (parameters such as `charset` allowed), as axum's own `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(mime) = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
    else {
        return false;
    };
    mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}

/// The `Content-Length` the client declared, if a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The whole body, never more than `limit` bytes buffered.
async fn read(req: Request, limit: usize) -> Result<Bytes, BodyRejection> {
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Err(_) => Err(BodyRejection::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(BodyRejection::TooLarge { limit }),
        Ok(Err(_)) => Err(BodyRejection::Unreadable),
    }
}

/// `bytes` as a `T`, with the path of the field that did not fit.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyRejection> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(classify)?;
    // Trailing data after the value (`{} {}`) is a syntax error, as for axum's Json.
    de.end().map_err(|e| classify_json(e, String::new()))?;
    Ok(value)
}

fn classify(e: serde_path_to_error::Error<serde_json::Error>) -> BodyRejection {
    let path = e.path().to_string();
    classify_json(e.into_inner(), path)
}

fn classify_json(e: serde_json::Error, path: String) -> BodyRejection {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => BodyRejection::InvalidJson {
            line: e.line(),
            column: e.column(),
        },
        Category::Data => match missing_field(&e) {
            Some(name) => BodyRejection::MissingField {
                path: short(&join(&path, name)),
            },
            None => BodyRejection::InvalidField { path: short(&path) },
        },
    }
}

/// The name in serde's "missing field `name`": the field of the handler's
/// type, not anything the client sent.
fn missing_field(e: &serde_json::Error) -> Option<String> {
    let text = e.to_string();
    let rest = text.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// `name` below `parent` (`.` is the body itself).
fn join(parent: &str, name: String) -> String {
    if parent.is_empty() || parent == "." {
        name
    } else {
        format!("{parent}.{name}")
    }
}

fn short(path: &str) -> String {
    match path.char_indices().nth(MAX_PATH_CHARS) {
        Some((cut, _)) => format!("{}...", &path[..cut]),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::post;
    use axum::Router;
    use serde::Deserialize;
    use tower::ServiceExt;

    #[derive(Deserialize)]
    #[allow(dead_code)] // read by serde only
    struct Order {
        item: String,
        quantity: u32,
        address: Address,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Address {
        city: String,
    }

    fn app() -> Router {
        Router::new().route(
            "/",
            post(|JsonBody(o): JsonBody<Order, 256>| async move { o.item }),
        )
    }

    async fn send(content_type: Option<&str>, body: impl Into<Body>) -> (u16, String, String) {
        let mut req = Request::post("/");
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let r = app().oneshot(req.body(body.into()).unwrap()).await.unwrap();
        let status = r.status().as_u16();
        let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn refusal(content_type: Option<&str>, body: impl Into<Body>) -> (u16, String, String) {
        let (status, ct, body) = send(content_type, body).await;
        assert_eq!(ct, "application/json", "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let code = v["error"].as_str().unwrap().to_string();
        (status, code, v["message"].as_str().unwrap().to_string())
    }

    const JSON: Option<&str> = Some("application/json");
    const GOOD: &str = r#"{"item":"tea","quantity":2,"address":{"city":"Kyoto"}}"#;

    #[tokio::test]
    async fn a_good_body_reaches_the_handler() {
        assert_eq!(send(JSON, GOOD).await.0, 200);
        let charset = Some("application/json; charset=utf-8");
        assert_eq!(send(charset, GOOD).await.0, 200);
        assert_eq!(
            send(Some("application/merge-patch+json"), GOOD).await.0,
            200
        );
    }

    #[tokio::test]
    async fn a_syntax_error_is_400_invalid_json_with_its_place() {
        let (status, code, message) = refusal(JSON, r#"{"item": tea}"#).await;
        assert_eq!((status, code.as_str()), (400, "invalid_json"));
        assert_eq!(message, "the body is not valid JSON (line 1, column 11)");
        assert_eq!(refusal(JSON, r#"{"item": "#).await.1, "invalid_json");
        assert_eq!(refusal(JSON, "").await.1, "invalid_json");
        assert_eq!(
            refusal(JSON, format!("{GOOD} {{}}")).await.1,
            "invalid_json"
        );
    }

    #[tokio::test]
    async fn a_missing_field_is_422_naming_its_path() {
        let (status, code, message) =
            refusal(JSON, r#"{"item":"tea","address":{"city":"K"}}"#).await;
        assert_eq!((status, code.as_str()), (422, "missing_field"));
        assert_eq!(message, "missing field `quantity`");
        let nested = r#"{"item":"tea","quantity":1,"address":{}}"#;
        assert_eq!(
            refusal(JSON, nested).await.2,
            "missing field `address.city`"
        );
    }

    #[tokio::test]
    async fn a_wrong_type_is_422_naming_the_field_not_the_value() {
        let body = r#"{"item":"tea","quantity":"SECRET-VALUE","address":{"city":"K"}}"#;
        let (status, code, message) = refusal(JSON, body).await;
        assert_eq!((status, code.as_str()), (422, "invalid_field"));
        assert_eq!(message, "field `quantity` has the wrong type or value");
        let negative = r#"{"item":"tea","quantity":-1,"address":{"city":"K"}}"#;
        assert_eq!(refusal(JSON, negative).await.1, "invalid_field");
        let nested = r#"{"item":"tea","quantity":1,"address":{"city":7}}"#;
        assert!(refusal(JSON, nested).await.2.contains("`address.city`"));
        let (_, code, message) = refusal(JSON, "[1, 2]").await;
        assert_eq!(code, "invalid_field");
        assert!(!message.contains('1'), "{message}");
    }

    #[tokio::test]
    async fn a_missing_or_other_content_type_is_415() {
        for ct in [
            None,
            Some("text/plain"),
            Some("text/json"),
            Some("nonsense"),
        ] {
            let (status, code, _) = refusal(ct, GOOD).await;
            assert_eq!(
                (status, code.as_str()),
                (415, "unsupported_media_type"),
                "{ct:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_declared_or_streamed() {
        let big = format!(r#"{{"item":"{}","quantity":1}}"#, "x".repeat(300));
        let (status, code, message) = refusal(JSON, big.clone()).await;
        assert_eq!((status, code.as_str()), (413, "body_too_large"));
        assert_eq!(message, "the body is larger than this route's 256 bytes");
        // No Content-Length: refused once 256 bytes have been read.
        let chunks = futures_util::stream::iter(
            big.into_bytes()
                .chunks(50)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let (status, code, _) = refusal(JSON, Body::from_stream(chunks)).await;
        assert_eq!((status, code.as_str()), (413, "body_too_large"));
    }

    #[tokio::test]
    async fn a_body_that_breaks_off_is_400_unreadable() {
        let broken = futures_util::stream::iter([
            Ok(Bytes::from_static(b"{\"item\":")),
            Err(std::io::Error::other("reset")),
        ]);
        let (status, code, _) = refusal(JSON, Body::from_stream(broken)).await;
        assert_eq!((status, code.as_str()), (400, "unreadable_body"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_is_408_once_the_timeout_passes() {
        use futures_util::StreamExt;
        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
            b"{\"item\":",
        ))]);
        let stalled = first.chain(futures_util::stream::pending());
        let started = tokio::time::Instant::now();
        let (status, code, _) = refusal(JSON, Body::from_stream(stalled)).await;
        assert_eq!((status, code.as_str()), (408, "body_timeout"));
        assert_eq!(started.elapsed(), BODY_TIMEOUT);
    }

    #[tokio::test]
    async fn the_default_limit_is_the_memory_budgets_25_kib() {
        async fn sized(n: usize) -> u16 {
            let app = Router::new().route("/", post(|_: JsonBody<serde_json::Value>| async {}));
            let body = format!("\"{}\"", "x".repeat(n - 2));
            let req = Request::post("/").header(CONTENT_TYPE, "application/json");
            let r = app.oneshot(req.body(Body::from(body)).unwrap()).await;
            r.unwrap().status().as_u16()
        }
        assert_eq!(DEFAULT_BODY_LIMIT, 25_600);
        assert_eq!(sized(DEFAULT_BODY_LIMIT).await, 200);
        assert_eq!(sized(DEFAULT_BODY_LIMIT + 1).await, 413);
    }

    #[test]
    fn a_long_path_is_cut() {
        let long = "k".repeat(500);
        assert_eq!(short(&long).chars().count(), MAX_PATH_CHARS + 3);
        assert_eq!(short("a.b"), "a.b");
    }
}
