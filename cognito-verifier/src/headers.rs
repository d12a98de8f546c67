//! Finding the token in a request's headers: one source, unambiguous.

use axum::http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use crate::rejection::Rejection;

// Header names, made once: a `&str` name is parsed and checked on every lookup.
/// The header ALB puts the access token in.
pub const ACCESS_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-amzn-oidc-accesstoken");
/// The header ALB puts its signed user claims in.
pub const OIDC_DATA_HEADER: HeaderName = HeaderName::from_static("x-amzn-oidc-data");
/// The header ALB puts the user's `sub` in.
pub const OIDC_IDENTITY_HEADER: HeaderName = HeaderName::from_static("x-amzn-oidc-identity");

/// The one value of header `name`, if sent; repeated is ambiguous, non-ASCII is malformed.
pub fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, Rejection> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::AmbiguousToken);
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| Rejection::MalformedToken)
}

/// Where the access token came from; it decides whether ALB data must come with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `x-amzn-oidc-accesstoken`: ALB1's OIDC login path, which also sends `x-amzn-oidc-data`.
    AlbSession,
    /// `Authorization: Bearer`: ALB1's JWT-validation path (and direct callers).
    Bearer,
}

/// The access token from `x-amzn-oidc-accesstoken` or `Authorization: Bearer`,
/// and which one. Both at once is refused: which one is meant, and so which
/// rules apply, is unclear. Beside ALB's header, an `Authorization` of
/// another scheme (a browser's own Basic, say) is no token and is ignored.
pub fn token_from(headers: &HeaderMap) -> Result<(&str, TokenSource), Rejection> {
    let alb_token = single_header(headers, &ACCESS_TOKEN_HEADER)?;
    let bearer = bearer_from(headers, alb_token.is_some())?;
    let (token, source) = match (alb_token, bearer) {
        (Some(_), Some(_)) => return Err(Rejection::AmbiguousToken),
        (Some(t), None) => (t, TokenSource::AlbSession),
        (None, Some(t)) => (t, TokenSource::Bearer),
        (None, None) => return Err(Rejection::MissingToken),
    };
    if token.is_empty() {
        return Err(Rejection::MalformedToken);
    }
    Ok((token, source))
}

/// The token of the one `Authorization: Bearer`, if sent; with `beside_alb`,
/// values of another scheme are skipped.
fn bearer_from(headers: &HeaderMap, beside_alb: bool) -> Result<Option<&str>, Rejection> {
    let mut bearer = None;
    for value in headers.get_all(AUTHORIZATION) {
        if beside_alb && !is_bearer_scheme(value) {
            continue;
        }
        if bearer.is_some() {
            return Err(Rejection::AmbiguousToken);
        }
        bearer = Some(bearer_token(value)?);
    }
    Ok(bearer)
}

/// Whether the value's scheme is `Bearer` (any case), well formed or not.
fn is_bearer_scheme(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    let scheme = bytes.split(|&b| b == b' ').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case(b"bearer")
}

fn bearer_token(value: &HeaderValue) -> Result<&str, Rejection> {
    let text = value
        .to_str()
        .map_err(|_| Rejection::MalformedAuthorization)?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Rejection::MalformedAuthorization),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn token_sources() {
        assert_eq!(
            token_from(&headers(&[("x-amzn-oidc-accesstoken", b"a.b.c")])),
            Ok(("a.b.c", TokenSource::AlbSession))
        );
        assert_eq!(
            token_from(&headers(&[("authorization", b"Bearer a.b.c")])),
            Ok(("a.b.c", TokenSource::Bearer))
        );
        assert_eq!(
            token_from(&headers(&[("authorization", b"bearer a.b.c")])),
            Ok(("a.b.c", TokenSource::Bearer))
        );
        assert_eq!(token_from(&HeaderMap::new()), Err(Rejection::MissingToken));
    }

    #[test]
    fn another_scheme_beside_the_alb_token_is_ignored() {
        for other in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Negotiate x",
            b"Token a.b.c",
            b"\xff",
        ] {
            let h = headers(&[
                ("x-amzn-oidc-accesstoken", b"a.b.c"),
                ("authorization", other),
            ]);
            assert_eq!(token_from(&h), Ok(("a.b.c", TokenSource::AlbSession)));
        }
        for bearer in [&b"Bearer x.y.z"[..], b"bearer x", b"Bearer", b"BEARER "] {
            let h = headers(&[
                ("x-amzn-oidc-accesstoken", b"a.b.c"),
                ("authorization", bearer),
            ]);
            assert!(token_from(&h).is_err(), "{bearer:?}");
        }
    }

    #[test]
    fn ambiguous_token_sources_are_refused() {
        let both = headers(&[
            ("x-amzn-oidc-accesstoken", b"a.b.c"),
            ("authorization", b"Bearer x.y.z"),
        ]);
        assert_eq!(token_from(&both), Err(Rejection::AmbiguousToken));
        // The same token in both still leaves open which path (and rules) it came by.
        let same = headers(&[
            ("x-amzn-oidc-accesstoken", b"a.b.c"),
            ("authorization", b"Bearer a.b.c"),
        ]);
        assert_eq!(token_from(&same), Err(Rejection::AmbiguousToken));
        let twice = headers(&[
            ("x-amzn-oidc-accesstoken", b"a.b.c"),
            ("x-amzn-oidc-accesstoken", b"a.b.c"),
        ]);
        assert_eq!(token_from(&twice), Err(Rejection::AmbiguousToken));
        let two_auth = headers(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer a"),
        ]);
        assert_eq!(token_from(&two_auth), Err(Rejection::AmbiguousToken));
    }

    #[test]
    fn malformed_token_headers_are_refused() {
        for v in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Token a.b.c",
            b"Bearer \xff",
        ] {
            assert_eq!(
                token_from(&headers(&[("authorization", v)])),
                Err(Rejection::MalformedAuthorization)
            );
        }
        assert_eq!(
            token_from(&headers(&[("x-amzn-oidc-accesstoken", b"\xfe\xff")])),
            Err(Rejection::MalformedToken)
        );
        assert_eq!(
            token_from(&headers(&[("x-amzn-oidc-accesstoken", b"")])),
            Err(Rejection::MalformedToken)
        );
    }
}
