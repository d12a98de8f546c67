//! From a request's headers to a verified identity.
//!
//! [`Authenticator::authenticate`] finds the token (one source, unambiguous),
//! answers from the verified-token cache when it can, and otherwise runs the
//! rules in order: shape and types ([`jwt::parse`]), key ([`jwks`]), signature,
//! claims, then the optional ALB data check ([`alb`]).

pub mod alb;
pub mod cache;
pub mod fetch;
pub mod jwks;
pub mod jwt;

use bytes::Bytes;
use hyper::header::{HeaderMap, AUTHORIZATION};
use std::sync::Arc;

use crate::config::Config;
use crate::error::Rejection;
use crate::metrics::Metrics;
use alb::{AlbVerifier, Identities};
use cache::{key_of, unix_now, Expires, TokenCache};
use fetch::Fetcher;
use jwks::JwksCache;
use jwt::{Claims, Expected, MAX_TOKEN_LEN};

/// The header ALB puts the access token in.
pub const ACCESS_TOKEN_HEADER: &str = "x-amzn-oidc-accesstoken";
/// The header ALB puts its signed user claims in.
pub const OIDC_DATA_HEADER: &str = "x-amzn-oidc-data";
/// The header ALB puts the user's `sub` in.
pub const OIDC_IDENTITY_HEADER: &str = "x-amzn-oidc-identity";

/// A verified caller, as cached. Kept small on purpose (one per cached
/// token): the `/api/me` body serialised once, so a cache hit does no JSON
/// work, and the route guards decided once, instead of the group and scope lists.
#[derive(Debug)]
pub struct Verified {
    /// The user's `sub`.
    pub sub: Box<str>,
    /// The token's `exp`, seconds since the epoch.
    pub exp: f64,
    /// Whether the caller is in the group `/api/admin` requires.
    pub admin: bool,
    /// Whether the token carries the scope `/api/profile` requires.
    pub profile: bool,
    /// `{"sub","username","client_id","scope":[...],"groups":[...],"exp"}`.
    pub me_body: Bytes,
}

/// What the guarded routes require (`ADMIN_GROUP`, `PROFILE_SCOPE`).
#[derive(Debug, Clone)]
pub struct Guards {
    /// The Cognito group `/api/admin` requires.
    pub admin_group: String,
    /// The OAuth scope `/api/profile` requires.
    pub profile_scope: String,
}

impl Expires for Verified {
    fn expires_at(&self) -> f64 {
        self.exp
    }
}

impl Verified {
    /// Builds the identity from claims that passed every rule.
    fn from_claims(claims: Claims, guards: &Guards) -> Verified {
        let scopes: Vec<&str> = claims.scopes().collect();
        let groups: &[String] = claims.groups.as_deref().unwrap_or_default();
        let exp = claims.exp.unwrap_or(0.0);
        let body = MeBody {
            sub: claims.sub.as_deref(),
            username: claims.username.as_deref(),
            client_id: claims.client_id.as_deref(),
            scope: &scopes,
            groups,
            exp: exp_number(exp),
        };
        // A borrowed struct straight to bytes (no JSON tree), shrunk to fit: it is kept per entry.
        let me_body = serde_json::to_vec(&body)
            .map(|v| Bytes::from(v.into_boxed_slice()))
            .unwrap_or_default();
        Verified {
            admin: groups.contains(&guards.admin_group),
            profile: scopes.contains(&guards.profile_scope.as_str()),
            sub: claims.sub.unwrap_or_default().into_boxed_str(),
            exp,
            me_body,
        }
    }
}

/// The `/api/me` body.
#[derive(serde::Serialize)]
struct MeBody<'a> {
    sub: Option<&'a str>,
    username: Option<&'a str>,
    client_id: Option<&'a str>,
    scope: &'a [&'a str],
    groups: &'a [String],
    exp: serde_json::Number,
}

/// A whole-second `exp` (always, from Cognito) as an integer, anything else as a float.
fn exp_number(exp: f64) -> serde_json::Number {
    if exp.fract() == 0.0 && exp.abs() < 9.0e15 {
        serde_json::Number::from(exp as i64)
    } else {
        serde_json::Number::from_f64(exp).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

/// Verifies callers: owns the JWKS, the token cache and the optional ALB check.
pub struct Authenticator {
    expected: Expected,
    guards: Guards,
    jwks: Arc<JwksCache>,
    cache: TokenCache<Verified>,
    alb: Option<AlbVerifier>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    /// Everything `config` asks for; the JWKS is not fetched yet (see [`JwksCache::load`]).
    pub fn new(
        config: &Config,
        jwks: Arc<JwksCache>,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
    ) -> Authenticator {
        let alb = config.alb.as_ref().map(|alb| {
            AlbVerifier::new(
                alb,
                &config.issuer,
                &config.client_ids,
                config.leeway,
                config.token_cache_size,
                fetcher,
                metrics.clone(),
            )
        });
        Authenticator {
            expected: Expected {
                issuer: config.issuer.clone(),
                client_ids: config.client_ids.clone(),
                leeway: config.leeway,
            },
            guards: Guards {
                admin_group: config.admin_group.clone(),
                profile_scope: config.profile_scope.clone(),
            },
            jwks,
            cache: TokenCache::new(config.token_cache_size),
            alb,
            metrics,
        }
    }

    /// Verifies the caller of a request with these headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Verified>, Rejection> {
        let token = token_from(headers)?;
        let now = unix_now();
        let verified = self.verify_token(token, now).await?;
        if let Some(alb) = &self.alb {
            let data = single_header(headers, OIDC_DATA_HEADER)
                .map_err(|e| match e {
                    Rejection::MalformedToken => Rejection::AlbDataMalformed,
                    other => other,
                })?
                .ok_or(Rejection::AlbDataMissing)?;
            let identity_header = single_header(headers, OIDC_IDENTITY_HEADER)?;
            let who = Identities {
                access_sub: &verified.sub,
                identity_header,
            };
            alb.verify(data, who, now).await?;
        }
        Ok(verified)
    }

    /// Rules 1-7 and 10 for one access token.
    pub async fn verify_token(&self, token: &str, now: f64) -> Result<Arc<Verified>, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::TokenTooLarge);
        }
        let key = self.cache.enabled().then(|| key_of(token));
        if let Some(key) = &key {
            let hit = self.cache.get(key, now);
            self.metrics.cache_lookup(hit.is_some());
            if let Some(hit) = hit {
                return Ok(hit);
            }
        }
        let parsed = jwt::parse(token)?;
        let jwk = self.jwks.key(&parsed.kid).await?;
        jwk.verify(parsed.signing_input, &parsed.signature)?;
        parsed.claims.check(&self.expected, now)?;
        let verified = Arc::new(Verified::from_claims(parsed.claims, &self.guards));
        if let Some(key) = key {
            self.cache.insert(key, verified.clone());
        }
        Ok(verified)
    }

    /// Verified tokens currently cached.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.len()
    }
}

/// The one value of header `name`, if sent; repeated is ambiguous, non-ASCII is malformed.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Rejection> {
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

/// The access token from `x-amzn-oidc-accesstoken` or `Authorization: Bearer`.
/// Both present and different is refused: which one is meant is unclear.
pub fn token_from(headers: &HeaderMap) -> Result<&str, Rejection> {
    let alb_token = single_header(headers, ACCESS_TOKEN_HEADER)?;
    let bearer = match headers.get_all(AUTHORIZATION).iter().count() {
        0 => None,
        1 => Some(bearer_token(&headers[AUTHORIZATION])?),
        _ => return Err(Rejection::AmbiguousToken),
    };
    match (alb_token, bearer) {
        (Some(a), Some(b)) if a != b => Err(Rejection::AmbiguousToken),
        (Some(t), _) | (None, Some(t)) if t.is_empty() => Err(Rejection::MalformedToken),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Err(Rejection::MissingToken),
    }
}

fn bearer_token(value: &hyper::header::HeaderValue) -> Result<&str, Rejection> {
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
    use crate::test_support::*;
    use hyper::header::HeaderValue;
    use serde_json::json;

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
            Ok("a.b.c")
        );
        assert_eq!(
            token_from(&headers(&[("authorization", b"Bearer a.b.c")])),
            Ok("a.b.c")
        );
        assert_eq!(
            token_from(&headers(&[("authorization", b"bearer a.b.c")])),
            Ok("a.b.c")
        );
        let same = headers(&[
            ("x-amzn-oidc-accesstoken", b"a.b.c"),
            ("authorization", b"Bearer a.b.c"),
        ]);
        assert_eq!(token_from(&same), Ok("a.b.c"));
        assert_eq!(token_from(&HeaderMap::new()), Err(Rejection::MissingToken));
    }

    #[test]
    fn ambiguous_token_sources_are_refused() {
        let both = headers(&[
            ("x-amzn-oidc-accesstoken", b"a.b.c"),
            ("authorization", b"Bearer x.y.z"),
        ]);
        assert_eq!(token_from(&both), Err(Rejection::AmbiguousToken));
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

    async fn authenticator(server: &KeyServer, cache_size: u64) -> (Authenticator, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let config = Config::from_lookup(|k| match k {
            "COGNITO_USER_POOL_ID" => Some(POOL.to_string()),
            "COGNITO_REGION" => Some(REGION.to_string()),
            "COGNITO_APP_CLIENT_ID" => Some(CLIENT.to_string()),
            "COGNITO_JWKS_URL" => Some(server.url()),
            "TOKEN_CACHE_SIZE" => Some(cache_size.to_string()),
            _ => None,
        })
        .unwrap();
        let fetcher = Fetcher::new().unwrap();
        let jwks = Arc::new(JwksCache::new(
            config.jwks_url.clone(),
            fetcher.clone(),
            metrics.clone(),
        ));
        jwks.load().await;
        (
            Authenticator::new(&config, jwks, fetcher, metrics.clone()),
            metrics,
        )
    }

    fn forged_signature(token: &str) -> String {
        let (input, _) = token.rsplit_once('.').unwrap();
        let other = test_key(1).sign(&json!({"x": 1}));
        format!("{input}.{}", other.rsplit_once('.').unwrap().1)
    }

    #[tokio::test]
    async fn a_good_token_verifies() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, _) = authenticator(&server, 100).await;
        let v = auth
            .verify_token(&test_key(0).sign(&good_claims()), now())
            .await
            .unwrap();
        assert_eq!(&*v.sub, SUB);
    }

    #[tokio::test]
    async fn rule4_signature_is_checked_before_claims() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, _) = authenticator(&server, 0).await;
        // Expired, foreign issuer, ID-token shape: a forged signature is reported first.
        let mut claims = claims_for("client9", now() - 10.0);
        claims["iss"] = json!("https://evil.example");
        claims["aud"] = json!("client9");
        let tok = forged_signature(&test_key(0).sign(&claims));
        assert_eq!(
            auth.verify_token(&tok, now()).await.unwrap_err(),
            Rejection::InvalidSignature
        );
        // Correctly signed, the same claims fail on claims.
        let tok = test_key(0).sign(&claims);
        assert_eq!(
            auth.verify_token(&tok, now()).await.unwrap_err(),
            Rejection::Expired
        );
    }

    #[tokio::test]
    async fn rule4_a_token_signed_by_a_key_under_another_kid_fails() {
        let server = KeyServer::jwks(&[test_key(0), test_key(1)]).await;
        let (auth, _) = authenticator(&server, 0).await;
        let tok =
            test_key(1).sign_with_header(&json!({"kid": "kid-0", "alg": "RS256"}), &good_claims());
        assert_eq!(
            auth.verify_token(&tok, now()).await.unwrap_err(),
            Rejection::InvalidSignature
        );
    }

    #[tokio::test]
    async fn rule10_second_verification_is_a_cache_hit_and_tampering_never_hits() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, metrics) = authenticator(&server, 100).await;
        let tok = test_key(0).sign(&good_claims());
        auth.verify_token(&tok, now()).await.unwrap();
        auth.verify_token(&tok, now()).await.unwrap();
        let text = metrics.render(auth.cached_tokens());
        assert!(text.contains("planb_token_cache_hits_total 1\n"), "{text}");
        // One changed byte in the signature, or in the payload: not a hit, and refused.
        let i = tok.len() - 10;
        let swap = if &tok[i..=i] == "A" { "B" } else { "A" };
        let sig_tampered = format!("{}{swap}{}", &tok[..i], &tok[i + 1..]);
        assert_eq!(
            auth.verify_token(&sig_tampered, now()).await.unwrap_err(),
            Rejection::InvalidSignature
        );
        let mut claims = good_claims();
        claims["username"] = json!("mallory");
        let payload_swapped = {
            let parts: Vec<&str> = tok.split('.').collect();
            format!(
                "{}.{}.{}",
                parts[0],
                b64(claims.to_string().as_bytes()),
                parts[2]
            )
        };
        assert_eq!(
            auth.verify_token(&payload_swapped, now())
                .await
                .unwrap_err(),
            Rejection::InvalidSignature
        );
        assert!(metrics
            .render(0)
            .contains("planb_token_cache_hits_total 1\n"));
    }

    #[tokio::test]
    async fn rule10_a_cached_token_is_refused_once_expired() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, _) = authenticator(&server, 100).await;
        let exp = (now() + 30.0).floor();
        let tok = test_key(0).sign(&claims_for(CLIENT, exp));
        auth.verify_token(&tok, now()).await.unwrap();
        assert!(auth.verify_token(&tok, exp - 1.0).await.is_ok());
        assert_eq!(
            auth.verify_token(&tok, exp).await.unwrap_err(),
            Rejection::Expired
        );
    }

    #[tokio::test]
    async fn rule10_cache_size_zero_verifies_every_time() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, metrics) = authenticator(&server, 0).await;
        let tok = test_key(0).sign(&good_claims());
        for _ in 0..3 {
            auth.verify_token(&tok, now()).await.unwrap();
        }
        assert!(metrics
            .render(0)
            .contains("planb_token_cache_hits_total 0\n"));
    }

    #[test]
    fn the_me_body_is_serialised_once_from_the_claims() {
        let mut claims = good_claims();
        claims["exp"] = json!(1_800_000_000);
        let tok = raw_token(&json!({"kid": "k", "alg": "RS256"}), &claims, b"s");
        let guards = |g: &str, s: &str| Guards {
            admin_group: g.into(),
            profile_scope: s.into(),
        };
        let v = Verified::from_claims(
            jwt::parse(&tok).unwrap().claims,
            &guards("admins", "planb/read"),
        );
        let body: serde_json::Value = serde_json::from_slice(&v.me_body).unwrap();
        assert_eq!(
            body,
            json!({
                "sub": SUB, "username": "alice", "client_id": CLIENT,
                "scope": ["aws.cognito.signin.user.admin", "planb/read"],
                "groups": ["admins"], "exp": 1_800_000_000,
            })
        );
        assert!(v.admin && v.profile);
        for (g, s) in [
            ("admin", "planb/read"),
            ("admins", "planb"),
            ("Admins", "planb/READ"),
        ] {
            let v = Verified::from_claims(jwt::parse(&tok).unwrap().claims, &guards(g, s));
            assert!(!(v.admin && v.profile), "{g} {s}");
        }
    }
}
