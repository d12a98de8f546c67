//! From a request's headers to a verified identity.
//!
//! [`Authenticator::authenticate`] finds the token ([`headers`]: one source,
//! unambiguous), answers from the verified-token cache when it can, and
//! otherwise runs the rules in order: shape and types ([`jwt::parse`]), key
//! ([`jwks`]), signature, claims, then the ALB data check ([`alb`]) when the
//! token came from ALB's OIDC session. The result is an [`Identity`].
//! [`layer`] puts it in front of any tower service, and gives axum handlers
//! the caller as an extractor.

pub mod alb;
pub mod alb_keys;
pub mod cache;
pub mod fetch;
pub mod headers;
pub mod identity;
pub mod jose;
pub mod jwks;
pub mod jwt;
pub mod layer;
pub mod penalty;

use hyper::header::HeaderMap;
use std::sync::Arc;

use crate::config::Config;
use crate::error::Rejection;
use crate::metrics::Metrics;
use alb::{AlbVerifier, Identities};
use alb_keys::{AlbKeys, KeyTiming};
use cache::{key_of, unix_now, CacheLimits, TokenCache};
use fetch::Fetcher;
use headers::{single_header, OIDC_DATA_HEADER, OIDC_IDENTITY_HEADER};
pub use headers::{token_from, TokenSource};
pub use identity::{CallerKind, Identity};
use jwks::JwksCache;
use jwt::{Expected, MAX_TOKEN_LEN};

/// Verifies callers: owns the JWKS, the token cache and the optional ALB check.
pub struct Authenticator {
    expected: Expected,
    jwks: Arc<JwksCache>,
    cache: TokenCache<Identity>,
    alb: Option<AlbVerifier>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    /// Everything `config` asks for, with its own HTTP client and key cache.
    /// Nothing is fetched yet: call [`JwksCache::load`] on [`Authenticator::jwks`]
    /// (in the background; `/ready` waits for it) before or while serving.
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> Result<Authenticator, String> {
        let fetcher = Fetcher::new().map_err(|e| format!("HTTP client: {e}"))?;
        let jwks = JwksCache::new(config.jwks_url.clone(), fetcher.clone(), metrics.clone())
            .with_max_age(config.jwks_max_age);
        Ok(Authenticator::new(config, Arc::new(jwks), fetcher, metrics))
    }

    /// Everything `config` asks for, over an existing key cache and client.
    pub fn new(
        config: &Config,
        jwks: Arc<JwksCache>,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
    ) -> Authenticator {
        let limits = CacheLimits {
            entries: config.token_cache_size,
            bytes: config.token_cache_bytes,
        };
        let alb = config.alb.as_ref().map(|alb| {
            let timing = KeyTiming {
                max_age: alb.key_max_age,
                ..KeyTiming::default()
            };
            let keys = AlbKeys::new(alb.key_url.clone(), fetcher, metrics.clone(), timing);
            AlbVerifier::new(
                alb,
                &config.issuer,
                &config.client_ids,
                config.leeway,
                limits,
                keys,
            )
        });
        Authenticator {
            expected: Expected {
                issuer: config.issuer.clone(),
                client_ids: config.client_ids.clone(),
                leeway: config.leeway,
            },
            jwks,
            cache: TokenCache::new(limits),
            alb,
            metrics,
        }
    }

    /// The pool's key cache (load it once at start; `/ready` asks whether it is loaded).
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// The counters this verifier writes to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Verifies the caller of a request with these headers. With `ALB_ARN`
    /// set, a token from `x-amzn-oidc-accesstoken` also needs a valid
    /// `x-amzn-oidc-data` for the same user, and a bearer token (ALB's JWT
    /// validation sends no data token) must be a machine's. A refusal is
    /// counted by reason.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Identity>, Rejection> {
        self.counted(self.authenticate_uncounted(headers).await)
    }

    /// The verdict on a request with these headers when it needs no waiting:
    /// a refusal found in the headers, or a token in the verified-token cache
    /// that needs no ALB data checked. `None`: only [`Self::authenticate`] can
    /// tell (a key to load, a signature to check, ALB data to verify). A miss
    /// is not counted here: `authenticate` looks again and counts it.
    pub fn authenticate_now(
        &self,
        headers: &HeaderMap,
    ) -> Option<Result<Arc<Identity>, Rejection>> {
        Some(self.counted(self.decide_now(headers)?))
    }

    /// `result`, its refusal (if any) counted by reason.
    fn counted(
        &self,
        result: Result<Arc<Identity>, Rejection>,
    ) -> Result<Arc<Identity>, Rejection> {
        if let Err(why) = result {
            self.metrics.failure(why);
        }
        result
    }

    /// The ALB data verifier, when a token from `source` must come with ALB
    /// data: with `ALB_ARN` set, for the OIDC session's token only.
    fn alb_for(&self, source: TokenSource) -> Option<&AlbVerifier> {
        self.alb
            .as_ref()
            .filter(|_| source == TokenSource::AlbSession)
    }

    fn decide_now(&self, headers: &HeaderMap) -> Option<Result<Arc<Identity>, Rejection>> {
        let (token, source) = match token_from(headers) {
            Ok(found) => found,
            Err(why) => return Some(Err(why)),
        };
        // Never verified, a token over the size limit is never in the cache:
        // `authenticate` refuses it.
        if !self.cache.enabled() || self.alb_for(source).is_some() {
            return None;
        }
        let hit = self.cache.get(&key_of(token), unix_now())?;
        self.metrics.cache_lookup(true);
        Some(self.bearer_rule(source, &hit).map(|()| hit))
    }

    /// With `ALB_ARN` set, a token without ALB data (a bearer token) is
    /// accepted from a machine caller only: a user's token comes through
    /// ALB's sign-in, with its signed data, and a leaked one used from inside
    /// the network is refused.
    fn bearer_rule(&self, source: TokenSource, who: &Identity) -> Result<(), Rejection> {
        let needs_machine = self.alb.is_some() && source == TokenSource::Bearer;
        if needs_machine && who.kind != CallerKind::Machine {
            return Err(Rejection::UserBearerToken);
        }
        Ok(())
    }

    async fn authenticate_uncounted(
        &self,
        headers: &HeaderMap,
    ) -> Result<Arc<Identity>, Rejection> {
        let (token, source) = token_from(headers)?;
        let now = unix_now();
        let verified = self.verify_token(token, now).await?;
        self.bearer_rule(source, &verified)?;
        if let Some(alb) = self.alb_for(source) {
            let data = single_header(headers, &OIDC_DATA_HEADER)
                .map_err(|e| match e {
                    Rejection::MalformedToken => Rejection::AlbDataMalformed,
                    other => other,
                })?
                .ok_or(Rejection::AlbDataMissing)?;
            let identity_header = single_header(headers, &OIDC_IDENTITY_HEADER)?;
            let who = Identities {
                access_sub: &verified.sub,
                identity_header,
            };
            alb.verify(data, who, now).await?;
        }
        Ok(verified)
    }

    /// Rules 1-7 and 10 for one access token.
    pub async fn verify_token(&self, token: &str, now: f64) -> Result<Arc<Identity>, Rejection> {
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
        jwk.verify(parsed.signing_input, parsed.signature)?;
        parsed.claims.check(&self.expected, now)?;
        let verified = Arc::new(Identity::from_claims(parsed.claims));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use testkit::keys::*;

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
    async fn authenticate_now_decides_only_what_needs_no_waiting() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, metrics) = authenticator(&server, 100).await;
        let tok = test_key(0).sign(&good_claims());
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {tok}").parse().unwrap());
        // Not cached yet: only authenticate can tell, and it counts the miss (once).
        assert!(auth.authenticate_now(&headers).is_none());
        auth.authenticate(&headers).await.unwrap();
        let who = auth
            .authenticate_now(&headers)
            .expect("a cached token is decided at once");
        assert_eq!(&*who.unwrap().sub, SUB);
        let text = metrics.render(auth.cached_tokens());
        assert!(text.contains("planb_token_cache_hits_total 1\n"), "{text}");
        assert!(
            text.contains("planb_token_cache_misses_total 1\n"),
            "{text}"
        );
        // A refusal found in the headers is decided at once, and counted.
        let none = auth.authenticate_now(&HeaderMap::new());
        assert!(
            matches!(none, Some(Err(Rejection::MissingToken))),
            "{none:?}"
        );
        let text = metrics.render(auth.cached_tokens());
        assert!(text.contains("reason=\"missing_token\"} 1\n"), "{text}");
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
}
