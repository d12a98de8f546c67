//! The pool's signing keys (rules 3 and 9).
//!
//! One JWKS per issuer, a [`KeySource`] for [`KeyFetch`]: loaded in the
//! background at start (the server listens at once; `/ready` says when keys
//! are there) and fetched again when a token names a `kid` we do not know,
//! within [`KeyFetch`]'s limits. A `kid` the JWKS lists but that fails rule 3
//! (`use: enc`, another `kty` or `alg`) is refused at once, with no fetch. A
//! failed fetch, or one with no usable key, never replaces the keys we have.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;
use std::sync::Arc;

use crate::fetch::{FetchError, Fetcher};
use crate::fetch_queue::Failure;
use crate::jose::{decode_strict, json_object, non_null};
use crate::kept_keys::KeyEntry;
use crate::key_fetch::{KeyFetch, KeySource, Refusals};
use crate::metrics::Metrics;
use crate::rejection::Rejection;

/// Largest JWKS body accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// A usable RS256 verification key from the JWKS, parsed once per JWK.
///
/// Kept as aws-lc's parsed key, which keeps the RSA key and its Montgomery
/// form from one verification to the next: `jsonwebtoken::crypto::verify`
/// (the same aws-lc check underneath) builds both again from `n` and `e` at
/// every call.
#[derive(Debug)]
pub struct Jwk {
    key: ParsedPublicKey,
    /// The heap bytes the parsed key holds (see [`parsed_rsa_bytes`]).
    bytes: usize,
}

impl Jwk {
    /// Verifies an RS256 (RSASSA-PKCS1-v1_5 with SHA-256, 2048-8192 bit keys)
    /// `signature`, decoded, over `message` (rule 4).
    ///
    /// The SHA-256 is taken in one shot and the parsed key checks the
    /// signature over that digest: the same check as `verify_sig`, without
    /// the streaming digest context `verify_sig` sets up, copies and frees
    /// around the key operation at every call.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Rejection> {
        let digest = digest::digest(&digest::SHA256, message);
        self.key
            .verify_digest_sig(&digest, signature)
            .map_err(|_| Rejection::InvalidSignature)
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

/// The one document every `kid` of a pool is looked up in.
const JWKS_TARGET: &str = "";

/// A user pool's JWKS as a key source: one document answers for every `kid`.
pub(crate) struct JwksSource {
    url: String,
    fetcher: Fetcher,
    metrics: Arc<Metrics>,
}

impl KeySource for JwksSource {
    type Key = Jwk;
    const REFUSALS: Refusals = Refusals {
        unknown: Rejection::UnknownKid,
        unusable: Rejection::UnusableKey,
        unavailable: Rejection::JwksUnavailable,
    };

    fn at(url: String, fetcher: Fetcher, metrics: Arc<Metrics>) -> Self {
        JwksSource {
            url,
            fetcher,
            metrics,
        }
    }

    fn target<'k>(&self, _kid: &'k str) -> &'k str {
        JWKS_TARGET
    }

    /// Any failure is the endpoint's, never a `kid`'s: the set's URL
    /// answering 404 says nothing about one key. A set with no usable key is
    /// one too: it would leave us unable to verify anything.
    async fn fetch(&self, _target: &str) -> Result<Vec<KeyEntry<Jwk>>, Failure> {
        let result = self.fetch_set().await;
        self.metrics.jwks_fetch(result.is_ok());
        match result {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the keys we have");
                Err(Failure::Transient)
            }
        }
    }

    fn count_penalised(&self) {
        self.metrics.jwks_penalty_box();
    }
}

impl JwksSource {
    async fn fetch_set(&self) -> Result<Vec<KeyEntry<Jwk>>, JwksError> {
        let body = self
            .fetcher
            .get(&self.url, MAX_JWKS_BYTES)
            .await
            .map_err(JwksError::Fetch)?;
        let keys = parse_jwks(&body)?;
        if !keys.iter().any(|k| k.key.is_some()) {
            return Err(JwksError::NoUsableKey);
        }
        Ok(keys)
    }
}

/// The keys of one user pool, fetched from its JWKS.
pub(crate) type JwksKeys = KeyFetch<JwksSource>;

impl JwksKeys {
    /// The initial load: fetches until a JWKS is in (see [`KeyFetch::load`]).
    pub(crate) async fn load_jwks(&self) {
        self.load(JWKS_TARGET).await;
    }

    /// True once a JWKS with a usable key has been fetched.
    pub(crate) fn is_loaded(&self) -> bool {
        !self.is_empty()
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

/// Parses a JWKS document into its entries, the usable keys first: an
/// entry that fails rule 3 is kept as unusable (refused without a fetch),
/// not fatal, and where a `kid` has several entries the first usable one
/// wins (the kept set keeps the first entry for a `kid`).
pub fn parse_jwks(body: &[u8]) -> Result<Vec<KeyEntry<Jwk>>, JwksError> {
    let doc: JwksDoc = json_object(body).ok_or(JwksError::Invalid)?;
    let (mut usable, mut unusable) = (Vec::new(), Vec::new());
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
            Ok(jwk) => usable.push(KeyEntry {
                kid,
                bytes: jwk.bytes,
                key: Some(Arc::new(jwk)),
            }),
            Err(why) => {
                tracing::warn!(reason = why, kid = %kid, "ignoring a JWKS entry");
                unusable.push(KeyEntry {
                    kid,
                    key: None,
                    bytes: 0,
                });
            }
        }
    }
    usable.append(&mut unusable);
    Ok(usable)
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
    let key = RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| "not a usable RSA key")?;
    Ok(Jwk {
        key,
        bytes: parsed_rsa_bytes(n.len(), e.len()),
    })
}

/// An estimate of what aws-lc holds for a parsed RSA public key of `n` and
/// `e` bytes: the DER copy, the key's own `n` and `e`, and, from the first
/// verification on, its Montgomery form (`n` again and R² mod `n`), with the
/// structures around them.
fn parsed_rsa_bytes(n: usize, e: usize) -> usize {
    5 * n + 2 * e
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
    use crate::key_fetch::KeyTiming;
    use crate::penalty::{FETCH_INTERVAL, PENALTY};
    use serde_json::json;
    use std::time::{Duration, Instant};
    use testkit::keys::{jwks, test_key, Answer, KeyServer, TestKey};

    /// The `kid`s of the usable keys.
    fn usable(entries: &[KeyEntry<Jwk>]) -> Vec<&str> {
        let usable = entries.iter().filter(|e| e.key.is_some());
        usable.map(|e| e.kid.as_str()).collect()
    }

    /// The first usable key for `kid`.
    fn key<'a>(entries: &'a [KeyEntry<Jwk>], kid: &str) -> &'a Jwk {
        let found = entries.iter().find(|e| e.kid == kid && e.key.is_some());
        found.and_then(|e| e.key.as_deref()).unwrap()
    }

    fn one(entry: serde_json::Value) -> Vec<KeyEntry<Jwk>> {
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
        let sig = decode_strict(sig).unwrap();
        assert_eq!(key(&keys, "kid-0").verify(input.as_bytes(), &sig), Ok(()));
        assert_eq!(
            key(&keys, "kid-0").verify(b"other", &sig),
            Err(Rejection::InvalidSignature)
        );
    }

    #[test]
    fn rule3_kty_must_be_rsa() {
        assert!(usable(&one(tweak(test_key(0), |j| j["kty"] = json!("EC")))).is_empty());
    }

    #[test]
    fn rule3_use_must_be_absent_or_sig() {
        assert!(usable(&one(tweak(test_key(0), |j| j["use"] = json!("enc")))).is_empty());
        assert!(usable(&one(tweak(test_key(0), |j| j["use"] = json!(null)))).is_empty());
        let absent = one(tweak(test_key(0), |j| {
            j.as_object_mut().unwrap().remove("use");
        }));
        assert_eq!(usable(&absent).len(), 1);
    }

    #[test]
    fn rule3_alg_must_be_absent_or_rs256() {
        for alg in ["RS512", "PS256", "HS256", "none"] {
            assert!(
                usable(&one(tweak(test_key(0), |j| j["alg"] = json!(alg)))).is_empty(),
                "{alg}"
            );
        }
        let absent = one(tweak(test_key(0), |j| {
            j.as_object_mut().unwrap().remove("alg");
        }));
        assert_eq!(usable(&absent).len(), 1);
    }

    #[test]
    fn rule3_n_and_e_must_be_non_empty_valid_key_material() {
        for (m, v) in [("n", ""), ("e", ""), ("n", "!!"), ("n", "AQAB")] {
            assert!(
                usable(&one(tweak(test_key(0), |j| j[m] = json!(v)))).is_empty(),
                "{m}={v}"
            );
        }
        assert!(usable(&one(tweak(test_key(0), |j| {
            j.as_object_mut().unwrap().remove("n");
        })))
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
        let sig = decode_strict(sig).unwrap();
        assert!(key(&keys, "kid-0").verify(input.as_bytes(), &sig).is_ok());
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
        assert_eq!(usable(&keys), ["kid-0"]);
    }

    fn cache(server: &KeyServer, penalty: Duration) -> JwksKeys {
        cache_timed(server, penalty, KeyTiming::default().max_age)
    }

    fn cache_timed(server: &KeyServer, penalty: Duration, max_age: Duration) -> JwksKeys {
        let timing = KeyTiming {
            penalty,
            max_age,
            ..KeyTiming::default()
        };
        let metrics = Arc::new(Metrics::default());
        JwksKeys::new(server.url(), Fetcher::new().unwrap(), metrics, timing)
    }

    #[tokio::test]
    async fn rule9_the_set_is_fetched_again_once_old_and_a_dropped_key_stops_verifying() {
        let server = KeyServer::jwks(&[test_key(0), test_key(1)]).await;
        let max_age = Duration::from_millis(200);
        let c = cache_timed(&server, Duration::from_millis(300), max_age);
        c.load_jwks().await;
        server.set(Answer::Status(500, String::new()));
        tokio::time::sleep(max_age).await;
        assert!(
            c.key("kid-0", None).await.is_ok(),
            "a fetch that failed for now keeps the set"
        );
        assert_eq!(server.hits(), 2);
        assert!(c.key("kid-0", None).await.is_ok());
        assert_eq!(server.hits(), 2, "tried again later, not per request");
        server.set(Answer::Body(jwks(&[test_key(1)]).to_string()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            c.key("kid-0", None).await.unwrap_err(),
            Rejection::UnknownKid
        );
        assert!(c.key("kid-1", None).await.is_ok());
        assert_eq!(server.hits(), 3, "one fetch re-validated the set");
    }

    #[tokio::test]
    async fn rule9_while_one_request_revalidates_the_set_the_others_verify_with_it() {
        let slow = Duration::from_millis(500);
        let server = KeyServer::start(Answer::Slow(slow, jwks(&[test_key(0)]).to_string())).await;
        let c = Arc::new(cache_timed(&server, PENALTY, Duration::from_millis(100)));
        c.load_jwks().await;
        tokio::time::sleep(FETCH_INTERVAL).await;
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.key("kid-0", None).await.map(drop) }
        });
        tokio::time::sleep(slow / 5).await;
        let started = Instant::now();
        assert!(c.key("kid-0", None).await.is_ok());
        assert!(started.elapsed() < slow / 5, "{:?}", started.elapsed());
        assert_eq!(first.await.unwrap(), Ok(()));
        assert_eq!(server.hits(), 2, "one re-validation");
    }

    #[tokio::test]
    async fn rule9_load_fetches_once_and_known_kids_need_no_fetch() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, PENALTY);
        assert!(!c.is_loaded());
        c.load_jwks().await;
        assert!(c.is_loaded());
        for _ in 0..10 {
            c.key("kid-0", None).await.unwrap();
        }
        c.load_jwks().await; // already loaded: no fetch
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn rule9_unknown_kid_refetches_once_then_penalty_box() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, PENALTY);
        c.load_jwks().await;
        assert_eq!(
            c.key("nope", None).await.unwrap_err(),
            Rejection::UnknownKid
        );
        assert_eq!(server.hits(), 2, "an unknown kid triggers one refetch");
        // The new key is published; the junk kid is in the penalty box: no fetch for it.
        server.set(Answer::Body(jwks(&[test_key(0), test_key(1)]).to_string()));
        for _ in 0..3 {
            assert_eq!(
                c.key("nope", None).await.unwrap_err(),
                Rejection::UnknownKid
            );
        }
        assert_eq!(server.hits(), 2, "no refetch for a penalised kid");
        assert!(
            c.key("kid-0", None).await.is_ok(),
            "known keys keep working"
        );
        // The junk kid does not hold back the real one: it waits for the next fetch slot only.
        let started = Instant::now();
        assert!(c.key("kid-1", None).await.is_ok());
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
        c.load_jwks().await;
        for kid in ["kid-1", "kid-2", "kid-1"] {
            assert_eq!(
                c.key(kid, None).await.unwrap_err(),
                Rejection::UnusableKey,
                "{kid}"
            );
        }
        assert_eq!(server.hits(), 1, "no fetch for a listed kid");
        assert!(c.key("kid-0", None).await.is_ok());
    }

    #[tokio::test]
    async fn rule9_a_flood_of_fresh_kids_is_bounded_by_the_fetch_rate() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = Arc::new(cache(&server, PENALTY));
        c.load_jwks().await;
        let flood: Vec<_> = (0..60)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { c.key(&format!("junk-{i}"), None).await })
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
            assert!(c.key(&format!("junk-{i}"), None).await.is_err());
        }
        assert_eq!(server.hits(), before, "every junk kid is penalised");
    }

    #[tokio::test]
    async fn rule9_one_senders_flood_of_junk_kids_cannot_keep_out_a_real_new_key() {
        const KIDS_PER_ROUND: usize = 75;
        const REQUESTS_PER_KID: usize = 16;
        const REAL_REQUESTS: usize = 12;
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let interval = Duration::from_millis(100);
        let timing = KeyTiming {
            interval,
            ..KeyTiming::default()
        };
        let metrics = Arc::new(Metrics::default());
        let c = Arc::new(JwksKeys::new(
            server.url(),
            Fetcher::new().unwrap(),
            metrics,
            timing,
        ));
        c.load_jwks().await;
        let t0 = Instant::now();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // One sender, rounds of 75 fresh kids, 16 requests each, never waiting for an answer.
        let attacker = {
            let (c, stop) = (c.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut sent, mut kids) = (Vec::new(), 0);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    for _ in 0..KIDS_PER_ROUND * REQUESTS_PER_KID {
                        let (c, kid) = (c.clone(), format!("junk-{}", kids / REQUESTS_PER_KID));
                        kids += 1;
                        sent.push(tokio::spawn(
                            async move { c.key(&kid, None).await.map(drop) },
                        ));
                    }
                    tokio::time::sleep(interval).await;
                }
                for s in sent.iter_mut() {
                    let r = s.await.unwrap();
                    assert!(
                        matches!(r, Err(Rejection::UnknownKid | Rejection::JwksUnavailable)),
                        "{r:?}"
                    );
                }
                (kids / REQUESTS_PER_KID, sent.len())
            })
        };
        tokio::time::sleep(interval * 5 / 2).await;
        server.set(Answer::Body(jwks(&[test_key(0), test_key(1)]).to_string()));
        let mut real = Vec::new();
        for _ in 0..REAL_REQUESTS / 2 {
            for _ in 0..2 {
                let c = c.clone();
                real.push(tokio::spawn(
                    async move { c.key("kid-1", None).await.map(drop) },
                ));
            }
            tokio::time::sleep(interval * 11 / 10).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (junk_kids, junk_requests) = attacker.await.unwrap();
        let mut served = 0;
        for r in real {
            assert_eq!(r.await.unwrap(), Ok(()), "a real request was refused");
            served += 1;
        }
        let (fetches, elapsed) = (server.hits() - 1, t0.elapsed());
        eprintln!(
            "JWKS flood: {junk_requests} junk requests for {junk_kids} junk kids from one sender; \
             {fetches} fetches of the set in {elapsed:?}; real key: {served} of {REAL_REQUESTS} served"
        );
        let bound = (elapsed.as_secs_f64() / interval.as_secs_f64()) as usize + 1;
        assert!(fetches <= bound, "{fetches} fetches in {elapsed:?}");
        assert!(
            junk_kids > 10 * fetches,
            "the flood outnumbered the slots: {junk_kids}"
        );
        assert_eq!(c.queue().len(), 0, "nothing stays queued");
    }

    #[tokio::test]
    async fn rule9_a_jwks_with_no_usable_key_never_replaces_a_usable_set() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, PENALTY);
        c.load_jwks().await;
        let enc_only = tweak(test_key(1), |j| j["use"] = json!("enc"));
        server.set(Answer::Body(json!({ "keys": [enc_only] }).to_string()));
        assert_eq!(
            c.key("kid-9", None).await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert_eq!(server.hits(), 2);
        assert!(c.key("kid-0", None).await.is_ok(), "the usable set is kept");
        let empty = KeyServer::start(Answer::Body("{\"keys\": []}".into())).await;
        let c = cache(&empty, PENALTY);
        assert_eq!(
            c.key("kid-0", None).await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert!(!c.is_loaded(), "no usable key: not ready");
    }

    #[tokio::test]
    async fn rule9_penalty_expires_and_a_rotated_key_is_picked_up() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let c = cache(&server, Duration::from_millis(200));
        c.load_jwks().await;
        assert!(c.key("kid-1", None).await.is_err());
        server.set(Answer::Body(jwks(&[test_key(1)]).to_string()));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(c.key("kid-1", None).await.is_ok());
        assert_eq!(server.hits(), 3);
        assert!(
            c.key("kid-0", None).await.is_err(),
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
                tokio::spawn(async move { c.key("kid-0", None).await.is_ok() })
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
        c.load_jwks().await;
        server.stop();
        assert_eq!(
            c.key("kid-1", None).await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert_eq!(
            c.key("kid-2", None).await.unwrap_err(),
            Rejection::JwksUnavailable,
            "penalised: shares the failure"
        );
        assert!(c.key("kid-0", None).await.is_ok());
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
                c.key("kid-0", None).await.unwrap_err(),
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
            c.key("kid-0", None).await.unwrap_err(),
            Rejection::JwksUnavailable
        );
        assert_eq!(target.hits(), 0);
    }

    #[tokio::test]
    async fn rule9_transport_errors_are_retried_once() {
        let server = KeyServer::start(Answer::Hangup).await;
        let c = cache(&server, PENALTY);
        assert!(c.key("kid-0", None).await.is_err());
        assert_eq!(server.hits(), 2, "one retry after a transport error");
        let server = KeyServer::start(Answer::Status(503, String::new())).await;
        let c = cache(&server, PENALTY);
        assert!(c.key("kid-0", None).await.is_err());
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
            c.key("kid-0", None).await.unwrap_err(),
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
            async move { c.load_jwks().await }
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
