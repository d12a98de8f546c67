//! The one bounded HTTP GET used for key material (the JWKS, the ALB's keys).
//!
//! Rule 9's limits: connect 1.5 s, 3 s in all (retry included), no redirects
//! (a key URL that redirects is misconfigured or hijacked), status 200 only,
//! at most `max_bytes` of body, and one retry on transport errors only: a bad
//! status or body will not get better by asking again at once.

use bytes::{Bytes, BytesMut};
use std::fmt;
use std::time::Duration;
use tracing::Instrument;

/// Connect timeout per attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Budget for the whole fetch, the retry included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a fetch failed; `Display` is safe to log (no body content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Connecting, sending or reading failed (after the one retry).
    Transport(String),
    /// The 3 s budget ran out.
    Timeout,
    /// The answer was not 200 (a redirect included: it is not followed).
    Status(u16),
    /// The body was larger than allowed.
    TooLarge,
}

impl FetchError {
    /// Whether the endpoint may answer better soon (5xx, 429, a timeout, a
    /// connection that failed): such a failure says nothing about the key
    /// asked for, so it is not penalised. A 404, another 4xx, a redirect or a
    /// body too large is the answer about that key.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Transport(_) | FetchError::Timeout => true,
            FetchError::Status(s) => *s >= 500 || *s == 429,
            FetchError::TooLarge => false,
        }
    }

    /// The failure's kind in one word (a trace span's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Transport(_) => "transport",
            FetchError::Timeout => "timeout",
            FetchError::Status(_) => "status",
            FetchError::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Transport(e) => write!(f, "transport error: {e}"),
            FetchError::Timeout => write!(f, "timed out after {TOTAL_TIMEOUT:?}"),
            FetchError::Status(s) if (300..400).contains(s) => {
                write!(f, "status {s}: redirects are not followed")
            }
            FetchError::Status(s) => write!(f, "status {s}, want 200"),
            FetchError::TooLarge => write!(f, "body too large"),
        }
    }
}

/// A shared HTTP client with rule 9's limits.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// Builds the client; fails only if TLS cannot be set up.
    pub fn new() -> Result<Fetcher, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .user_agent(concat!("planb-backend/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Fetcher { client })
    }

    /// GETs `url`: the body when the answer is 200 and at most `max_bytes` long.
    /// In a `key fetch` span (a client span, for a service that exports traces).
    pub async fn get(&self, url: &str, max_bytes: usize) -> Result<Bytes, FetchError> {
        let span = tracing::info_span!(
            "key fetch",
            otel.kind = "client",
            http.request.method = "GET",
            url.full = url,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let fetched = self
            .get_in_time(url, max_bytes)
            .instrument(span.clone())
            .await;
        match &fetched {
            Ok(_) => span.record("http.response.status_code", 200_i64),
            Err(e) => {
                if let FetchError::Status(s) = e {
                    span.record("http.response.status_code", i64::from(*s));
                }
                span.record("error.type", e.kind());
                span.record("otel.status_code", "ERROR")
            }
        };
        fetched
    }

    async fn get_in_time(&self, url: &str, max_bytes: usize) -> Result<Bytes, FetchError> {
        let attempt = async {
            match self.get_once(url, max_bytes).await {
                Err(FetchError::Transport(e)) => {
                    tracing::debug!(url, error = %e, "key fetch: retrying once after transport error");
                    self.get_once(url, max_bytes).await
                }
                other => other,
            }
        };
        tokio::time::timeout(TOTAL_TIMEOUT, attempt)
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }

    async fn get_once(&self, url: &str, max_bytes: usize) -> Result<Bytes, FetchError> {
        let mut resp = self.client.get(url).send().await.map_err(transport)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(FetchError::TooLarge);
        }
        // Read chunk by chunk so a lying or absent Content-Length cannot make us buffer more.
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    // The source chain says what went wrong (refused, reset...); URLs are ours, not a client's.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    FetchError::Transport(msg)
}
