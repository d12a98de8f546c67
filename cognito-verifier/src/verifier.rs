//! From a request's headers to a verified identity.
//!
//! [`Verifier::authenticate`] finds the token (one source, unambiguous),
//! answers from the verified-token cache when it can, and otherwise runs the
//! rules in order: shape and types, the pool's key, signature, claims, then
//! the ALB data check when the token came from ALB's OIDC session.

use axum::http::HeaderMap;
use prometheus::Registry;
use std::fmt;
use std::sync::Arc;

use crate::alb::{AlbVerifier, Identities};
use crate::alb_keys::AlbKeys;
use crate::cache::{unix_now, TokenCache};
use crate::config::VerifierConfig;
use crate::fetch::Fetcher;
use crate::headers::{
    single_header, token_from, TokenSource, OIDC_DATA_HEADER, OIDC_IDENTITY_HEADER,
};
use crate::identity::{CallerKind, Identity};
use crate::jwks::JwksKeys;
use crate::jwt::{self, Expected, MAX_TOKEN_LEN};
use crate::key_fetch::KeyTiming;
use crate::metrics::Metrics;
use crate::rejection::Rejection;

/// Why a [`Verifier`] could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// The HTTP client for key fetches could not be built.
    HttpClient(String),
    /// The counters could not be registered (a name already taken in the registry).
    Metrics(prometheus::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::HttpClient(e) => write!(f, "key fetch HTTP client: {e}"),
            SetupError::Metrics(e) => write!(f, "registering the verifier's metrics: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// One accepted user pool: what its tokens' claims must say, and its keys.
struct Pool {
    expected: Expected,
    jwks: JwksKeys,
}

/// Verifies callers: owns each pool's keys, the verified-token cache and the
/// optional ALB data check. Share it in an `Arc`.
pub struct Verifier {
    pools: Box<[Pool]>,
    cache: TokenCache<Identity>,
    alb: Option<AlbVerifier>,
    metrics: Arc<Metrics>,
}

impl Verifier {
    /// A verifier for `config` whose counters are not exported. Nothing is
    /// fetched yet: call [`Verifier::load_keys`] (in the background;
    /// [`Verifier::keys_loaded`] says when it is done) before or while serving.
    pub fn new(config: VerifierConfig) -> Result<Verifier, SetupError> {
        let fetcher = Fetcher::new().map_err(SetupError::HttpClient)?;
        Ok(Verifier::assemble(
            config,
            fetcher,
            Arc::new(Metrics::default()),
        ))
    }

    /// Like [`Verifier::new`], with its counters in `registry` (see
    /// [`METRICS`](crate::METRICS) for the names; the registry's prefix, if
    /// any, goes in front of each).
    pub fn with_registry(
        config: VerifierConfig,
        registry: &Registry,
    ) -> Result<Verifier, SetupError> {
        let verifier = Verifier::new(config)?;
        let cache = verifier.cache.clone();
        verifier
            .metrics
            .register(registry, move || cache.len())
            .map_err(SetupError::Metrics)?;
        Ok(verifier)
    }

    fn assemble(config: VerifierConfig, fetcher: Fetcher, metrics: Arc<Metrics>) -> Verifier {
        let pools = config
            .pools
            .iter()
            .map(|pool| Pool {
                expected: Expected {
                    issuer: pool.issuer().to_string(),
                    client_ids: pool.client_ids().to_vec(),
                    leeway: config.leeway,
                },
                jwks: JwksKeys::new(
                    pool.jwks_url().to_string(),
                    fetcher.clone(),
                    metrics.clone(),
                    KeyTiming {
                        max_age: config.jwks_max_age,
                        ..KeyTiming::default()
                    },
                ),
            })
            .collect();
        let alb = config.alb.as_ref().map(|alb| {
            let timing = KeyTiming {
                max_age: alb.key_max_age(),
                ..KeyTiming::default()
            };
            let keys = AlbKeys::new(alb.key_url().to_string(), fetcher, metrics.clone(), timing);
            AlbVerifier::new(alb, config.token_cache, keys)
        });
        Verifier {
            pools,
            cache: TokenCache::new(config.token_cache),
            alb,
            metrics,
        }
    }

    /// Fetches every pool's keys, retrying each with a growing pause until
    /// it is in. Run it once at start, in the background (a request's own
    /// fetch may get there first; this then returns at once).
    pub async fn load_keys(&self) {
        let loads = self.pools.iter().map(|p| p.jwks.load_jwks());
        futures_util::future::join_all(loads).await;
    }

    /// True once every pool's keys have been fetched (a readiness check).
    pub fn keys_loaded(&self) -> bool {
        self.pools.iter().all(|p| p.jwks.is_loaded())
    }

    /// Verifies the caller of a request with these headers: the token from
    /// `x-amzn-oidc-accesstoken` or `Authorization: Bearer`, and, with the
    /// ALB check configured, ALB's `x-amzn-oidc-data` for a token from ALB's
    /// sign-in (a bearer token must then be a machine's). A refusal is
    /// counted by reason.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Identity>, Rejection> {
        self.counted(self.authenticate_uncounted(headers).await)
    }

    /// The verdict on a request with these headers when it needs no waiting:
    /// a refusal found in the headers, or a token in the verified-token cache
    /// that needs no ALB data checked. `None`: only [`Self::authenticate`] can
    /// tell (a key to load, a signature to check, ALB data to verify), and
    /// always with the cache off. A miss is not counted here: `authenticate`
    /// looks again and counts it.
    pub fn authenticate_now(
        &self,
        headers: &HeaderMap,
    ) -> Option<Result<Arc<Identity>, Rejection>> {
        Some(self.counted(self.decide_now(headers)?))
    }

    /// Verifies one access token on its own (no ALB data, no bearer rule):
    /// for a token that reaches the service another way than an HTTP header.
    pub async fn verify_access_token(&self, token: &str) -> Result<Arc<Identity>, Rejection> {
        self.counted(self.verify_token(token, unix_now()).await)
    }

    /// Verified tokens currently cached.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.len()
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
    /// data: with the ALB check configured, for the OIDC session's token only.
    fn alb_for(&self, source: TokenSource) -> Option<&AlbVerifier> {
        self.alb
            .as_ref()
            .filter(|_| source == TokenSource::AlbSession)
    }

    fn decide_now(&self, headers: &HeaderMap) -> Option<Result<Arc<Identity>, Rejection>> {
        // With no cache every token is verified by `authenticate`, which
        // reads the headers itself: reading them here too would be wasted.
        if !self.cache.enabled() {
            return None;
        }
        let (token, source) = match token_from(headers) {
            Ok(found) => found,
            Err(why) => return Some(Err(why)),
        };
        // Never verified, a token over the size limit is never in the cache:
        // `authenticate` refuses it.
        if self.alb_for(source).is_some() {
            return None;
        }
        let hit = self.cache.get(token, unix_now())?;
        self.metrics.cache_lookup(true);
        Some(self.bearer_rule(source, &hit).map(|()| hit))
    }

    /// With the ALB check configured, a token without ALB data (a bearer
    /// token) is accepted from a machine caller only: a user's token comes
    /// through ALB's sign-in, with its signed data, and a leaked one used
    /// from inside the network is refused.
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
            let pool = self.pool_of(Some(&verified.issuer))?;
            alb.verify(data, who, &pool.expected, now).await?;
        }
        Ok(verified)
    }

    /// The pool whose keys verify a token claiming issuer `iss`: the only
    /// one, whatever the claim says (the claim is checked after the
    /// signature), or among several the one it names.
    fn pool_of(&self, iss: Option<&str>) -> Result<&Pool, Rejection> {
        match &*self.pools {
            [only] => Ok(only),
            pools => pools
                .iter()
                .find(|p| Some(p.expected.issuer.as_str()) == iss)
                .ok_or(Rejection::WrongIssuer),
        }
    }

    /// Rules 1-7 and 10 for one access token.
    pub(crate) async fn verify_token(
        &self,
        token: &str,
        now: f64,
    ) -> Result<Arc<Identity>, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::TokenTooLarge);
        }
        if self.cache.enabled() {
            let hit = self.cache.get(token, now);
            self.metrics.cache_lookup(hit.is_some());
            if let Some(hit) = hit {
                return Ok(hit);
            }
        }
        let mut scratch = Vec::new();
        let parsed = jwt::parse(token, &mut scratch)?;
        let pool = self.pool_of(parsed.claims.iss.as_deref())?;
        let jwk = pool.jwks.key(&parsed.kid, None).await?;
        jwk.verify(parsed.signing_input, parsed.signature)?;
        parsed.claims.check(&pool.expected, now)?;
        let verified = Arc::new(Identity::from_claims(&parsed.claims));
        self.cache.insert(token, verified.clone());
        Ok(verified)
    }
}

/// A verifier of the test pool (`testkit::keys`), its keys loaded from `server`.
#[cfg(test)]
pub(crate) async fn test_verifier(server: &testkit::keys::KeyServer) -> Arc<Verifier> {
    use testkit::keys::{CLIENT, POOL, REGION};
    let pool = crate::config::UserPool::in_region(REGION, POOL, [CLIENT])
        .unwrap()
        .with_jwks_url(&server.url())
        .unwrap();
    let config = VerifierConfig::builder().user_pool(pool).build().unwrap();
    let verifier = Arc::new(Verifier::new(config).unwrap());
    verifier.load_keys().await;
    verifier
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserPool;
    use serde_json::json;
    use testkit::keys::*;

    async fn authenticator(server: &KeyServer, cache_size: u64) -> (Verifier, Arc<Metrics>) {
        let pool = UserPool::in_region(REGION, POOL, [CLIENT])
            .unwrap()
            .with_jwks_url(&server.url())
            .unwrap();
        let config = VerifierConfig::builder()
            .user_pool(pool)
            .token_cache(cache_size, 1 << 20)
            .build()
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let auth = Verifier::assemble(config, Fetcher::new().unwrap(), metrics.clone());
        auth.load_keys().await;
        (auth, metrics)
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
        assert_eq!(metrics.cache_lookups(), (1, 1));
        // A refusal found in the headers is decided at once, and counted.
        let none = auth.authenticate_now(&HeaderMap::new());
        assert!(
            matches!(none, Some(Err(Rejection::MissingToken))),
            "{none:?}"
        );
        assert_eq!(metrics.failures(Rejection::MissingToken), 1);
    }

    #[tokio::test]
    async fn without_a_cache_authenticate_decides_everything_and_counts_once() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, metrics) = authenticator(&server, 0).await;
        let mut headers = HeaderMap::new();
        assert!(auth.authenticate_now(&headers).is_none());
        assert_eq!(
            auth.authenticate(&headers).await.unwrap_err(),
            Rejection::MissingToken
        );
        assert_eq!(metrics.failures(Rejection::MissingToken), 1);
        let tok = test_key(0).sign(&good_claims());
        headers.insert("authorization", format!("Bearer {tok}").parse().unwrap());
        assert!(auth.authenticate_now(&headers).is_none());
        assert_eq!(&*auth.authenticate(&headers).await.unwrap().sub, SUB);
    }

    #[tokio::test]
    async fn rule10_second_verification_is_a_cache_hit_and_tampering_never_hits() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let (auth, metrics) = authenticator(&server, 100).await;
        let tok = test_key(0).sign(&good_claims());
        auth.verify_token(&tok, now()).await.unwrap();
        auth.verify_token(&tok, now()).await.unwrap();
        assert_eq!(metrics.cache_lookups().0, 1);
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
        assert_eq!(metrics.cache_lookups().0, 1);
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
        assert_eq!(metrics.cache_lookups().0, 0);
    }

    #[tokio::test]
    async fn several_pools_each_verify_with_their_own_keys_and_clients() {
        let (server_a, server_b) = (
            KeyServer::jwks(&[test_key(0)]).await,
            KeyServer::jwks(&[test_key(1)]).await,
        );
        let pool = |region, id, client, server: &KeyServer| {
            UserPool::in_region(region, id, [client])
                .unwrap()
                .with_jwks_url(&server.url())
                .unwrap()
        };
        let other = pool("us-east-1", "us-east-1_Partner", "partner", &server_b);
        let other_issuer = other.issuer().to_string();
        let config = VerifierConfig::builder()
            .user_pool(pool(REGION, POOL, CLIENT, &server_a))
            .user_pool(other)
            .build()
            .unwrap();
        let auth = Verifier::new(config).unwrap();
        auth.load_keys().await;
        assert!(auth.keys_loaded());
        let claims_of = |iss: &str, client: &str| {
            let mut c = claims_for(client, now() + 60.0);
            c["iss"] = json!(iss);
            c
        };

        let a = auth
            .verify_token(&test_key(0).sign(&good_claims()), now())
            .await;
        assert_eq!(&*a.unwrap().issuer, ISSUER);
        let b = test_key(1).sign(&claims_of(&other_issuer, "partner"));
        assert_eq!(
            &*auth.verify_token(&b, now()).await.unwrap().issuer,
            other_issuer
        );

        // Each pool's keys and clients are its own.
        let cases = [
            (
                test_key(0).sign(&claims_of(&other_issuer, "partner")),
                Rejection::UnknownKid,
            ),
            (
                test_key(1).sign(&claims_of(&other_issuer, CLIENT)),
                Rejection::WrongClient,
            ),
            (
                test_key(0).sign(&claims_of(ISSUER, "partner")),
                Rejection::WrongClient,
            ),
            (
                test_key(0).sign(&claims_of("https://evil.example", CLIENT)),
                Rejection::WrongIssuer,
            ),
        ];
        for (token, why) in cases {
            assert_eq!(auth.verify_token(&token, now()).await.unwrap_err(), why);
        }
    }
}
