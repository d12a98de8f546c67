//! The pool's signing keys (rules 3 and 9).
//!
//! One [`JwksCache`] per issuer. It is loaded in the background at start (the
//! server listens at once; `/ready` says when keys are there) and refetched
//! only when a token names a `kid` we do not know. Concurrent misses share one
//! fetch (an async mutex plus a generation counter), and a fetch that still
//! lacks the `kid` — or fails — puts the URL in a penalty box: no refetch for
//! [`PENALTY`], while known keys keep verifying. A failed or invalid fetch
//! never replaces the keys we have.

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::fetch::{FetchError, Fetcher};
use crate::error::Rejection;
use crate::metrics::Metrics;

/// How long after a fetch that lacked a `kid` (or failed) the URL is not fetched again.
pub const PENALTY: Duration = Duration::from_secs(10);
/// Largest JWKS body accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// A usable RS256 verification key from the JWKS.
#[derive(Debug)]
pub struct Jwk {
    key: ParsedPublicKey,
}

impl Jwk {
    /// Verifies an RS256 signature over `message` (rule 4).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Rejection> {
        self.key
            .verify_sig(message, signature)
            .map_err(|_| Rejection::InvalidSignature)
    }
}

/// Keys by `kid`.
pub type KeySet = HashMap<String, Arc<Jwk>>;

/// Why a JWKS could not be used; logged, never sent to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// The HTTP fetch failed.
    Fetch(FetchError),
    /// The body is not `{"keys": [...]}`.
    Invalid,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::Fetch(e) => write!(f, "fetch failed: {e}"),
            JwksError::Invalid => write!(f, "body is not a JSON object with a keys array"),
        }
    }
}

/// The single-flight state, only touched under the fetch lock.
#[derive(Default)]
struct Flight {
    /// When the penalty box opens again.
    penalty_until: Option<Instant>,
    /// The outcome of the last fetch, shared with the requests that waited for it.
    last_failed: bool,
}

/// The JWKS of one issuer: known keys, and the rules for fetching more.
pub struct JwksCache {
    url: String,
    fetcher: Fetcher,
    metrics: Arc<Metrics>,
    penalty: Duration,
    keys: RwLock<Arc<KeySet>>,
    loaded: AtomicBool,
    /// Bumped after every fetch, so waiters can tell a fetch happened while they queued.
    generation: AtomicU64,
    flight: tokio::sync::Mutex<Flight>,
}

impl JwksCache {
    /// An empty cache for `url`; nothing is fetched until [`JwksCache::load`] or a lookup.
    pub fn new(url: String, fetcher: Fetcher, metrics: Arc<Metrics>) -> JwksCache {
        JwksCache::with_penalty(url, fetcher, metrics, PENALTY)
    }

    /// Like [`JwksCache::new`] with another penalty-box length (tests).
    pub fn with_penalty(
        url: String,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
        penalty: Duration,
    ) -> JwksCache {
        JwksCache {
            url,
            fetcher,
            metrics,
            penalty,
            keys: RwLock::new(Arc::new(KeySet::new())),
            loaded: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            flight: tokio::sync::Mutex::new(Flight::default()),
        }
    }

    /// True once a JWKS has been fetched and parsed.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The key for `kid`, fetching the JWKS when it is unknown (rules 3, 9).
    pub async fn key(&self, kid: &str) -> Result<Arc<Jwk>, Rejection> {
        if let Some(k) = self.lookup(kid) {
            return Ok(k);
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut flight = self.flight.lock().await;
        if let Some(k) = self.lookup(kid) {
            return Ok(k);
        }
        // A fetch finished while we queued and it did not bring the kid: share its outcome.
        if self.generation.load(Ordering::Acquire) != seen {
            return Err(unknown(flight.last_failed));
        }
        if flight.penalty_until.is_some_and(|t| Instant::now() < t) {
            self.metrics.jwks_penalty_box();
            return Err(unknown(flight.last_failed));
        }
        let ok = self.refresh(&mut flight).await;
        match self.lookup(kid) {
            Some(k) => Ok(k),
            None => {
                flight.penalty_until = Some(Instant::now() + self.penalty);
                Err(unknown(!ok))
            }
        }
    }

    /// The initial load: fetches until a JWKS is in, backing off up to the penalty length.
    /// Returns at once if a request's fetch got there first.
    pub async fn load(&self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            {
                let mut flight = self.flight.lock().await;
                if self.is_loaded() || self.refresh(&mut flight).await {
                    return;
                }
                flight.penalty_until = Some(Instant::now() + self.penalty);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.penalty);
        }
    }

    fn lookup(&self, kid: &str) -> Option<Arc<Jwk>> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    /// One fetch under the lock; replaces the key set only on success.
    async fn refresh(&self, flight: &mut Flight) -> bool {
        let result = self.fetch().await;
        self.metrics.jwks_fetch(result.is_ok());
        let ok = match result {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                self.loaded.store(true, Ordering::Release);
                true
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the keys we have");
                false
            }
        };
        flight.last_failed = !ok;
        self.generation.fetch_add(1, Ordering::AcqRel);
        ok
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let body = self
            .fetcher
            .get(&self.url, MAX_JWKS_BYTES)
            .await
            .map_err(JwksError::Fetch)?;
        parse_jwks(&body)
    }
}

fn unknown(fetch_failed: bool) -> Rejection {
    if fetch_failed {
        Rejection::JwksUnavailable
    } else {
        Rejection::UnknownKid
    }
}

#[derive(Deserialize)]
struct JwksDoc {
    keys: Vec<serde_json::Value>,
}

/// One JWKS entry, leniently typed: a wrongly typed member makes the entry unusable, not the set.
#[derive(Deserialize)]
struct RawJwk {
    kid: String,
    kty: String,
    #[serde(default, rename = "use", deserialize_with = "super::jwt::non_null")]
    use_: Option<String>,
    #[serde(default, deserialize_with = "super::jwt::non_null")]
    alg: Option<String>,
    n: String,
    e: String,
}

/// Parses a JWKS document; entries that fail rule 3 are skipped, not fatal.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    let doc: JwksDoc = super::jwt::json_object(body).ok_or(JwksError::Invalid)?;
    let mut keys = KeySet::new();
    for entry in doc.keys {
        match usable_key(entry) {
            Ok((kid, jwk)) => {
                // The first entry for a kid wins: a later duplicate cannot shadow it.
                keys.entry(kid).or_insert_with(|| Arc::new(jwk));
            }
            Err(why) => tracing::warn!(reason = why, "ignoring a JWKS entry"),
        }
    }
    Ok(keys)
}

/// Rule 3: `kty` RSA, `use` absent or `sig`, `alg` absent or RS256 (the only
/// header alg we accept), non-empty `n` and `e` that form a 2048-8192 bit key.
fn usable_key(entry: serde_json::Value) -> Result<(String, Jwk), &'static str> {
    let raw: RawJwk = serde_json::from_value(entry).map_err(|_| "missing or mistyped member")?;
    if raw.kty != "RSA" {
        return Err("kty is not RSA");
    }
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    if raw.alg.as_deref().is_some_and(|a| a != "RS256") {
        return Err("alg is not RS256");
    }
    let n = URL_SAFE_NO_PAD
        .decode(&raw.n)
        .map_err(|_| "n is not base64url")?;
    let e = URL_SAFE_NO_PAD
        .decode(&raw.e)
        .map_err(|_| "e is not base64url")?;
    if n.is_empty() || e.is_empty() {
        return Err("empty n or e");
    }
    // The verification algorithm would refuse a short key at every verify; refuse it once here.
    if !(2048..=8192).contains(&modulus_bits(&n)) {
        return Err("modulus is not 2048-8192 bits");
    }
    let key = RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| "not a usable RSA key")?;
    Ok((raw.kid, Jwk { key }))
}

/// Bit length of a big-endian unsigned integer.
fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{jwks, test_key, Answer, KeyServer, TestKey};
    use serde_json::json;

    fn one(entry: serde_json::Value) -> KeySet {
        parse_jwks(json!({ "keys": [entry] }).to_string().as_bytes()).unwrap()
    }

    fn tweak(key: &TestKey, f: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
        let mut j = key.jwk();
        f(&mut j);
        j
    }

    #[test]
    fn a_cognito_jwk_is_usable_and_verifies() {
        let k = test_key(0);
        let keys = one(k.jwk());
        let tok = k.sign(&json!({"a": 1}));
        let (input, sig) = tok.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert_eq!(keys["kid-0"].verify(input.as_bytes(), &sig), Ok(()));
        assert_eq!(
            keys["kid-0"].verify(b"other", &sig),
            Err(Rejection::InvalidSignature)
        );
    }

    #[test]
    fn rule3_kty_must_be_rsa() {
        assert!(one(tweak(test_key(0), |j| j["kty"] = json!("EC"))).is_empty());
    }

    #[test]
    fn rule3_use_must_be_absent_or_sig() {
        assert!(one(tweak(test_key(0), |j| j["use"] = json!("enc"))).is_empty());
        assert!(one(tweak(test_key(0), |j| j["use"] = json!(null))).is_empty());
        let absent = one(tweak(test_key(0), |j| {
            j.as_object_mut().unwrap().remove("use");
        }));
        assert_eq!(absent.len(), 1);
    }

    #[test]
    fn rule3_alg_must_be_absent_or_rs256() {
        for alg in ["RS512", "PS256", "HS256", "none"] {
            assert!(
                one(tweak(test_key(0), |j| j["alg"] = json!(alg))).is_empty(),
                "{alg}"
            );
        }
        let absent = one(tweak(test_key(0), |j| {
            j.as_object_mut().unwrap().remove("alg");
        }));
        assert_eq!(absent.len(), 1);
    }

    #[test]
    fn rule3_n_and_e_must_be_non_empty_valid_key_material() {
        for (m, v) in [("n", ""), ("e", ""), ("n", "!!"), ("n", "AQAB")] {
            assert!(
                one(tweak(test_key(0), |j| j[m] = json!(v))).is_empty(),
                "{m}={v}"
            );
        }
        assert!(one(tweak(test_key(0), |j| {
            j.as_object_mut().unwrap().remove("n");
        }))
        .is_empty());
    }

    #[test]
    fn rule3_kid_is_required_and_first_duplicate_wins() {
        assert!(one(tweak(test_key(0), |j| {
            j.as_object_mut().unwrap().remove("kid");
        }))
        .is_empty());
        let dup = tweak(test_key(1), |j| j["kid"] = json!("kid-0"));
        let keys = parse_jwks(
            json!({"keys": [test_key(0).jwk(), dup]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let tok = test_key(0).sign(&json!({}));
        let (input, sig) = tok.rsplit_once('.').unwrap();
        assert!(keys["kid-0"]
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .is_ok());
    }

    #[test]
    fn rule3_bad_entries_are_skipped_not_fatal() {
        let doc = json!({"keys": [
            "a string",
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            tweak(test_key(1), |j| j["use"] = json!("enc")),
            test_key(0).jwk(),
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["kid-0"]);
    }

    fn cache(server: &KeyServer, penalty: Duration) -> JwksCache {
        JwksCache::with_penalty(
            server.url(),
            Fetcher::new().unwrap(),
            Arc::new(Metrics::default()),
            penalty,
        )
    }

    #[tokio::test]
    async fn rule9_load_fetches_once_and_known_kids_need_no_fetch() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, PENALTY);
        assert!(!c.is_loaded());
        c.load().await;
        assert!(c.is_loaded());
        for _ in 0..10 {
            c.key("kid-0").await.unwrap();
        }
        c.load().await; // already loaded: no fetch
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn rule9_unknown_kid_refetches_once_then_penalty_box() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, PENALTY);
        c.load().await;
        assert_eq!(c.key("nope").await.unwrap_err(), Rejection::UnknownKid);
        assert_eq!(server.hits(), 2, "an unknown kid triggers one refetch");
        // The new key is published, but the URL is in the penalty box: no fetch.
        server.set(Answer::Body(jwks(&[test_key(0), test_key(1)]).to_string()));
        for kid in ["nope", "other", "kid-1"] {
            assert_eq!(
                c.key(kid).await.unwrap_err(),
                Rejection::UnknownKid,
                "{kid}"
            );
        }
        assert_eq!(server.hits(), 2, "no refetch within the penalty");
        assert!(c.key("kid-0").await.is_ok(), "known keys keep working");
    }

    #[tokio::test]
    async fn rule9_penalty_expires_and_a_rotated_key_is_picked_up() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, Duration::from_millis(200));
        c.load().await;
        assert!(c.key("kid-1").await.is_err());
        server.set(Answer::Body(jwks(&[test_key(1)]).to_string()));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(c.key("kid-1").await.is_ok());
        assert_eq!(server.hits(), 3);
        assert!(
            c.key("kid-0").await.is_err(),
            "a key removed from the JWKS is dropped after a successful refetch"
        );
    }

    #[tokio::test]
    async fn rule9_concurrent_misses_share_one_fetch() {
        let server = KeyServer::start(Answer::Slow(
            Duration::from_millis(200),
            jwks(&[test_key(0)]).to_string(),
        ))
        .await;
        let c = Arc::new(cache(&server, PENALTY));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.key("kid-0").await.is_ok() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn rule9_fetch_failures_keep_known_keys_and_are_penalised() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, PENALTY);
        c.load().await;
        server.stop();
        assert_eq!(
            c.key("kid-1").await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert_eq!(
            c.key("kid-2").await.unwrap_err(),
            Rejection::JwksUnavailable,
            "penalised: shares the failure"
        );
        assert!(c.key("kid-0").await.is_ok());
    }

    #[tokio::test]
    async fn rule9_bad_answers_are_errors_not_crashes() {
        let big = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(MAX_JWKS_BYTES));
        for answer in [
            Answer::Body("not json".into()),
            Answer::Body(big),
            Answer::Status(302, "http://127.0.0.1:9/elsewhere".into()),
            Answer::Status(500, String::new()),
            Answer::Hangup,
        ] {
            let server = KeyServer::start(answer.clone()).await;
            let c = cache(&server, PENALTY);
            assert_eq!(
                c.key("kid-0").await.unwrap_err(),
                Rejection::JwksUnavailable,
                "{answer:?}"
            );
            assert!(!c.is_loaded());
        }
    }

    #[tokio::test]
    async fn rule9_redirects_are_not_followed() {
        let target = KeyServer::jwks(&[test_key(0)]).await;
        let server = KeyServer::start(Answer::Status(302, target.url())).await;
        let c = cache(&server, PENALTY);
        assert_eq!(
            c.key("kid-0").await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert_eq!(target.hits(), 0);
    }

    #[tokio::test]
    async fn rule9_transport_errors_are_retried_once() {
        let server = KeyServer::start(Answer::Hangup).await;
        let c = cache(&server, PENALTY);
        assert!(c.key("kid-0").await.is_err());
        assert_eq!(server.hits(), 2, "one retry after a transport error");
        let server = KeyServer::start(Answer::Status(503, String::new())).await;
        let c = cache(&server, PENALTY);
        assert!(c.key("kid-0").await.is_err());
        assert_eq!(server.hits(), 1, "no retry after a bad status");
    }

    #[tokio::test]
    async fn rule9_a_slow_endpoint_times_out() {
        let server = KeyServer::start(Answer::Slow(
            Duration::from_secs(10),
            jwks(&[test_key(0)]).to_string(),
        ))
        .await;
        let c = cache(&server, PENALTY);
        let started = Instant::now();
        assert_eq!(
            c.key("kid-0").await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert!(
            started.elapsed() < Duration::from_millis(3500),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn rule9_load_retries_until_the_jwks_is_there() {
        let server = KeyServer::start(Answer::Status(500, String::new())).await;
        let c = Arc::new(cache(&server, Duration::from_millis(400)));
        let loader = tokio::spawn({
            let c = c.clone();
            async move { c.load().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!c.is_loaded());
        server.set(Answer::Body(jwks(&[test_key(0)]).to_string()));
        tokio::time::timeout(Duration::from_secs(5), loader)
            .await
            .unwrap()
            .unwrap();
        assert!(c.is_loaded());
    }

    #[test]
    fn an_invalid_document_is_an_error() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"{\"keys\": {}}",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_jwks(body).unwrap_err(), JwksError::Invalid);
        }
    }
}
