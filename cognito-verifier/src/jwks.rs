//! The pool's signing keys (rules 3 and 9).
//!
//! One [`JwksCache`] per issuer. It is loaded in the background at start (the
//! server listens at once; `/ready` says when keys are there) and refetched
//! only when a token names a `kid` we do not know. A `kid` the JWKS lists but
//! that fails rule 3 (`use: enc`, another `kty` or `alg`) is refused at once,
//! with no fetch. Concurrent misses share one fetch (an async mutex, and a
//! fetch that started after a request arrived answers for it), the URL is
//! fetched at most once per [`FETCH_INTERVAL`], and a `kid` that a fetch did
//! not bring is refused without a fetch for [`PENALTY`] (the [`PenaltyBox`]),
//! while known keys keep verifying. A failed fetch, or one with no usable key,
//! never replaces the keys we have.

use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::fetch::{FetchError, Fetcher};
use crate::jose::{decode_strict, json_object, non_null};
use crate::metrics::Metrics;
use crate::penalty::{PenaltyBox, FETCH_INTERVAL, PENALTY};
use crate::rejection::Rejection;

/// Largest JWKS body accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// The key set is fetched again once this old, unless configured otherwise.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// A usable RS256 verification key from the JWKS, built once per JWK.
#[derive(Debug)]
pub struct Jwk {
    key: DecodingKey,
}

impl Jwk {
    /// Verifies an RS256 signature (`signature`: the token's base64url
    /// signature part) over `message` (rule 4), through `jsonwebtoken`.
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<(), Rejection> {
        match jsonwebtoken::crypto::verify(signature, message, &self.key, Algorithm::RS256) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(Rejection::InvalidSignature),
        }
    }
}

/// The keys of one JWKS document: usable ones by `kid`, and the `kid`s
/// listed with no usable key (refused without a fetch).
#[derive(Debug, Default)]
pub struct KeySet {
    usable: HashMap<String, Arc<Jwk>>,
    unusable: HashSet<String>,
}

impl KeySet {
    /// Usable keys held.
    pub fn len(&self) -> usize {
        self.usable.len()
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.usable.is_empty()
    }

    /// The `kid`s of the usable keys.
    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.usable.keys()
    }

    /// What the set says about `kid`: its key, a refusal, or nothing (`None`).
    fn find(&self, kid: &str) -> Option<Result<Arc<Jwk>, Rejection>> {
        match self.usable.get(kid) {
            Some(k) => Some(Ok(k.clone())),
            None if self.unusable.contains(kid) => Some(Err(Rejection::UnusableKey)),
            None => None,
        }
    }
}

impl std::ops::Index<&str> for KeySet {
    type Output = Jwk;

    fn index(&self, kid: &str) -> &Jwk {
        &self.usable[kid]
    }
}

/// Why a JWKS could not be used; logged, never sent to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// The HTTP fetch failed.
    Fetch(FetchError),
    /// The body is not `{"keys": [...]}`.
    Invalid,
    /// No entry is a usable RS256 key: it would leave us unable to verify anything.
    NoUsableKey,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::Fetch(e) => write!(f, "fetch failed: {e}"),
            JwksError::Invalid => write!(f, "body is not a JSON object with a keys array"),
            JwksError::NoUsableKey => write!(f, "no entry is a usable RS256 signing key"),
        }
    }
}

/// The single-flight state, only touched under the fetch lock.
#[derive(Default)]
struct Flight {
    /// When the last fetch started: it answers for every request that arrived before.
    last_started: Option<Instant>,
}

/// The JWKS of one issuer: known keys, and the rules for fetching more.
pub struct JwksCache {
    url: String,
    fetcher: Fetcher,
    metrics: Arc<Metrics>,
    penalty: PenaltyBox,
    /// The longest the initial load backs off between attempts.
    max_backoff: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// A set older than this is fetched again before it verifies more.
    max_age: Duration,
    /// When the set is next due to be fetched again (`None` before the first).
    due: Mutex<Option<Instant>>,
    loaded: AtomicBool,
    last_failed: AtomicBool,
    flight: tokio::sync::Mutex<Flight>,
}

impl JwksCache {
    /// An empty cache for `url`; nothing is fetched until [`JwksCache::load`] or a lookup.
    pub fn new(url: String, fetcher: Fetcher, metrics: Arc<Metrics>) -> JwksCache {
        JwksCache::with_timing(url, fetcher, metrics, PENALTY, FETCH_INTERVAL)
    }

    /// Like [`JwksCache::new`] with another per-`kid` penalty and fetch interval (tests).
    pub fn with_timing(
        url: String,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
        penalty: Duration,
        interval: Duration,
    ) -> JwksCache {
        JwksCache {
            url,
            fetcher,
            metrics,
            penalty: PenaltyBox::new(penalty, interval),
            max_backoff: penalty,
            keys: RwLock::new(Arc::new(KeySet::default())),
            max_age: JWKS_MAX_AGE,
            due: Mutex::new(None),
            loaded: AtomicBool::new(false),
            last_failed: AtomicBool::new(false),
            flight: tokio::sync::Mutex::new(Flight::default()),
        }
    }

    /// Fetches the set again once it is `max_age` old: a key the pool no
    /// longer lists stops verifying; a fetch that fails for now keeps the set.
    pub fn with_max_age(mut self, max_age: Duration) -> JwksCache {
        self.max_age = max_age;
        self
    }

    /// True once a JWKS with a usable key has been fetched.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The key for `kid`, fetching the JWKS when it is unknown (rules 3, 9).
    pub async fn key(&self, kid: &str) -> Result<Arc<Jwk>, Rejection> {
        if let Some(found) = self.find(kid) {
            if !self.is_due() {
                return found;
            }
            self.revalidate().await;
            return self.find(kid).unwrap_or(Err(Rejection::UnknownKid));
        }
        if self.penalty.is_penalised(kid) {
            self.metrics.jwks_penalty_box();
            return Err(self.unknown());
        }
        let arrived = Instant::now();
        let mut flight = self.flight.lock().await;
        if let Some(found) = self.find(kid) {
            return found;
        }
        let fetched = if flight.last_started.is_some_and(|t| t >= arrived) {
            // A fetch that started after this request arrived did not bring the kid.
            self.metrics.jwks_penalty_box();
            !self.last_failed.load(Ordering::Acquire)
        } else {
            let ok = self.fetch_in_turn(&mut flight).await;
            if let Some(found) = self.find(kid) {
                return found;
            }
            ok
        };
        if !fetched {
            // The endpoint failed, not the kid: the fetch rate alone bounds retries.
            return Err(Rejection::JwksUnavailable);
        }
        self.penalty.penalise(kid);
        Err(Rejection::UnknownKid)
    }

    /// The initial load: fetches until a JWKS is in, backing off up to the penalty length.
    /// Returns at once if a request's fetch got there first.
    pub async fn load(&self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            {
                let mut flight = self.flight.lock().await;
                if self.is_loaded() || self.fetch_in_turn(&mut flight).await {
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    fn is_due(&self) -> bool {
        let due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        due.is_some_and(|at| Instant::now() >= at)
    }

    /// Fetches the set again. One request does it; the others meanwhile
    /// verify with the set we have, rather than wait. A failure for now keeps
    /// the set and tries again a penalty length later.
    async fn revalidate(&self) {
        let Ok(mut flight) = self.flight.try_lock() else {
            return;
        };
        if !self.is_due() {
            return;
        }
        if !self.fetch_in_turn(&mut flight).await {
            let retry = Instant::now() + self.max_backoff;
            *self.due.lock().unwrap_or_else(|e| e.into_inner()) = Some(retry);
        }
    }

    fn find(&self, kid: &str) -> Option<Result<Arc<Jwk>, Rejection>> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .find(kid)
    }

    fn unknown(&self) -> Rejection {
        if self.last_failed.load(Ordering::Acquire) {
            Rejection::JwksUnavailable
        } else {
            Rejection::UnknownKid
        }
    }

    /// One fetch under the lock, once the URL's fetch slot opens; replaces
    /// the key set only with one that has a usable key.
    async fn fetch_in_turn(&self, flight: &mut Flight) -> bool {
        tokio::time::sleep(self.penalty.reserve()).await;
        flight.last_started = Some(Instant::now());
        let result = self.fetch().await;
        self.metrics.jwks_fetch(result.is_ok());
        let ok = match result {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                let next = Instant::now() + self.max_age;
                *self.due.lock().unwrap_or_else(|e| e.into_inner()) = Some(next);
                self.loaded.store(true, Ordering::Release);
                true
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the keys we have");
                false
            }
        };
        self.last_failed.store(!ok, Ordering::Release);
        ok
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let body = self
            .fetcher
            .get(&self.url, MAX_JWKS_BYTES)
            .await
            .map_err(JwksError::Fetch)?;
        let keys = parse_jwks(&body)?;
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(keys)
    }
}

#[derive(Deserialize)]
struct JwksDoc {
    keys: Vec<serde_json::Value>,
}

/// One JWKS entry, leniently typed: a wrongly typed member makes the entry unusable, not the set.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default, rename = "use", deserialize_with = "non_null")]
    use_: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    alg: Option<String>,
    n: String,
    e: String,
}

/// Parses a JWKS document; entries that fail rule 3 are skipped, not fatal,
/// and their `kid`s remembered as unusable.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    let doc: JwksDoc = json_object(body).ok_or(JwksError::Invalid)?;
    let mut keys = KeySet::default();
    for entry in doc.keys {
        let Some(kid) = entry
            .get("kid")
            .and_then(|k| k.as_str())
            .map(str::to_string)
        else {
            tracing::warn!(
                reason = "kid missing or not a string",
                "ignoring a JWKS entry"
            );
            continue;
        };
        match usable_key(entry) {
            Ok(jwk) => {
                // The first entry for a kid wins: a later duplicate cannot shadow it.
                keys.usable.entry(kid).or_insert_with(|| Arc::new(jwk));
            }
            Err(why) => {
                tracing::warn!(reason = why, kid = %kid, "ignoring a JWKS entry");
                keys.unusable.insert(kid);
            }
        }
    }
    let KeySet { usable, unusable } = &mut keys;
    unusable.retain(|kid| !usable.contains_key(kid));
    Ok(keys)
}

/// Rule 3: `kty` RSA, `use` absent or `sig`, `alg` absent or RS256 (the only
/// header alg we accept), non-empty `n` and `e` that form a 2048-8192 bit key.
fn usable_key(entry: serde_json::Value) -> Result<Jwk, &'static str> {
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
    let n = decode_strict(&raw.n).ok_or("n is not base64url")?;
    let e = decode_strict(&raw.e).ok_or("e is not base64url")?;
    if n.is_empty() || e.is_empty() {
        return Err("empty n or e");
    }
    // The verification algorithm would refuse a short key at every verify; refuse it once here.
    if !(2048..=8192).contains(&modulus_bits(&n)) {
        return Err("modulus is not 2048-8192 bits");
    }
    RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| "not a usable RSA key")?;
    Ok(Jwk {
        key: DecodingKey::from_rsa_raw_components(&n, &e),
    })
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
    use serde_json::json;
    use testkit::keys::{jwks, test_key, Answer, KeyServer, TestKey};

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
        assert_eq!(keys["kid-0"].verify(input.as_bytes(), sig), Ok(()));
        assert_eq!(
            keys["kid-0"].verify(b"other", sig),
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
        assert!(keys["kid-0"].verify(input.as_bytes(), sig).is_ok());
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
        JwksCache::with_timing(
            server.url(),
            Fetcher::new().unwrap(),
            Arc::new(Metrics::default()),
            penalty,
            FETCH_INTERVAL,
        )
    }

    #[tokio::test]
    async fn rule9_the_set_is_fetched_again_once_old_and_a_dropped_key_stops_verifying() {
        let server = KeyServer::jwks(&[test_key(0), test_key(1)]).await;
        let max_age = Duration::from_millis(200);
        let c = cache(&server, Duration::from_millis(300)).with_max_age(max_age);
        c.load().await;
        server.set(Answer::Status(500, String::new()));
        tokio::time::sleep(max_age).await;
        assert!(
            c.key("kid-0").await.is_ok(),
            "a fetch that failed for now keeps the set"
        );
        assert_eq!(server.hits(), 2);
        assert!(c.key("kid-0").await.is_ok());
        assert_eq!(server.hits(), 2, "tried again later, not per request");
        server.set(Answer::Body(jwks(&[test_key(1)]).to_string()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.key("kid-0").await.unwrap_err(), Rejection::UnknownKid);
        assert!(c.key("kid-1").await.is_ok());
        assert_eq!(server.hits(), 3, "one fetch re-validated the set");
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
        // The new key is published; the junk kid is in the penalty box: no fetch for it.
        server.set(Answer::Body(jwks(&[test_key(0), test_key(1)]).to_string()));
        for _ in 0..3 {
            assert_eq!(c.key("nope").await.unwrap_err(), Rejection::UnknownKid);
        }
        assert_eq!(server.hits(), 2, "no refetch for a penalised kid");
        assert!(c.key("kid-0").await.is_ok(), "known keys keep working");
        // The junk kid does not hold back the real one: it waits for the next fetch slot only.
        let started = Instant::now();
        assert!(c.key("kid-1").await.is_ok());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.hits(), 3);
    }

    #[tokio::test]
    async fn rule3_a_listed_but_unusable_kid_is_refused_without_a_fetch() {
        let enc = tweak(test_key(1), |j| j["use"] = json!("enc"));
        let ec = tweak(test_key(2), |j| j["kty"] = json!("EC"));
        let server = KeyServer::start(Answer::Body(
            json!({"keys": [test_key(0).jwk(), enc, ec]}).to_string(),
        ))
        .await;
        let c = cache(&server, PENALTY);
        c.load().await;
        for kid in ["kid-1", "kid-2", "kid-1"] {
            assert_eq!(
                c.key(kid).await.unwrap_err(),
                Rejection::UnusableKey,
                "{kid}"
            );
        }
        assert_eq!(server.hits(), 1, "no fetch for a listed kid");
        assert!(c.key("kid-0").await.is_ok());
    }

    #[tokio::test]
    async fn rule9_a_flood_of_fresh_kids_is_bounded_by_the_fetch_rate() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = Arc::new(cache(&server, PENALTY));
        c.load().await;
        let flood: Vec<_> = (0..60)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { c.key(&format!("junk-{i}")).await })
            })
            .collect();
        for t in flood {
            assert_eq!(t.await.unwrap().unwrap_err(), Rejection::UnknownKid);
        }
        assert!(
            server.hits() <= 3,
            "load + at most 2 fetches, got {}",
            server.hits()
        );
        let before = server.hits();
        for i in 0..60 {
            assert!(c.key(&format!("junk-{i}")).await.is_err());
        }
        assert_eq!(server.hits(), before, "every junk kid is penalised");
    }

    #[tokio::test]
    async fn rule9_a_jwks_with_no_usable_key_never_replaces_a_usable_set() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, PENALTY);
        c.load().await;
        let enc_only = tweak(test_key(1), |j| j["use"] = json!("enc"));
        server.set(Answer::Body(json!({ "keys": [enc_only] }).to_string()));
        assert_eq!(
            c.key("kid-9").await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert_eq!(server.hits(), 2);
        assert!(c.key("kid-0").await.is_ok(), "the usable set is kept");
        let empty = KeyServer::start(Answer::Body("{\"keys\": []}".into())).await;
        let c = cache(&empty, PENALTY);
        assert_eq!(
            c.key("kid-0").await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert!(!c.is_loaded(), "no usable key: not ready");
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
