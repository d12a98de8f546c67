//! `GET /logout`: ALB's session cookies expired, then Cognito's own sign-out.
//! ALB's fixed responses cannot set cookies, so the backend does it.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use hyper::StatusCode;

use super::app::App;
use super::error::ApiError;

/// ALB splits its session into shards `-0`, `-1`, ... of this name.
const SESSION_COOKIE: &str = "AWSELBAuthSessionCookie-";
/// Shards expired when the request carries none (ALB uses up to four).
const DEFAULT_SHARDS: u32 = 4;

/// The session cookie shards the request carries, by name.
fn session_shards(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('=').map(|(n, _)| n.trim()))
        .filter(|n| {
            n.strip_prefix(SESSION_COOKIE).is_some_and(|i| {
                !i.is_empty() && i.len() <= 3 && i.bytes().all(|b| b.is_ascii_digit())
            })
        })
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        names = (0..DEFAULT_SHARDS)
            .map(|i| format!("{SESSION_COOKIE}{i}"))
            .collect();
    }
    names
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /logout`.
#[utoipa::path(get, path = "/logout", tag = "session",
    responses((status = 302, description = "To Cognito's sign-out, with ALB's session cookies expired"),
        (status = 404, description = "Sign-out is not configured (`logout_not_configured`)", body = cognito_verifier::openapi::ErrorBody)))]
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let logout = app.logout.as_ref().ok_or(ApiError::LogoutNotConfigured)?;
    let location = format!(
        "{}/logout?client_id={}&logout_uri={}",
        logout.cognito_domain,
        percent_encode(&app.logout_client_id),
        percent_encode(&logout.redirect_url)
    );
    // ALB sets its shards Secure on HTTPS; a plain-HTTP listener (a local stack) cannot.
    let secure = match headers.get("x-forwarded-proto") {
        Some(proto) => proto.as_bytes().eq_ignore_ascii_case(b"https"),
        None => true,
    };
    let attributes = if secure {
        "; Secure; HttpOnly"
    } else {
        "; HttpOnly"
    };
    let mut r = StatusCode::FOUND.into_response();
    let h = r.headers_mut();
    for name in session_shards(&headers) {
        let expired = format!(
            "{name}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0{attributes}"
        );
        if let Ok(v) = HeaderValue::from_str(&expired) {
            h.append(SET_COOKIE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_from_the_cookie_header_or_the_default_four() {
        let mut h = HeaderMap::new();
        assert_eq!(session_shards(&h).len(), 4);
        h.insert(
            COOKIE,
            HeaderValue::from_static(
                "a=1; AWSELBAuthSessionCookie-1=x; AWSELBAuthSessionCookie-0=y; AWSELBAuthSessionCookie-x=z",
            ),
        );
        assert_eq!(
            session_shards(&h),
            ["AWSELBAuthSessionCookie-0", "AWSELBAuthSessionCookie-1"]
        );
    }

    #[test]
    fn urls_are_percent_encoded() {
        assert_eq!(
            percent_encode("https://a.example/x?y=1"),
            "https%3A%2F%2Fa.example%2Fx%3Fy%3D1"
        );
    }
}
