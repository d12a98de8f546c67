//! The optional check of the ALB's `x-amzn-oidc-data` token (rule 8).
//!
//! ALB signs it with ES256 and encodes its parts as base64url *with* `=`
//! padding, so the parts are decoded padding-tolerantly and the signature is
//! checked over the raw `header.payload` text exactly as received. The key is
//! fetched from the region of the configured ARN (never from anything in the
//! token; the `kid` must be a UUID before it goes into the URL); see
//! [`AlbKeys`] for how fetches are limited and kept.

use serde::Deserialize;
use std::sync::Arc;

use crate::alb_keys::AlbKeys;
use crate::cache::{CacheEntry, CacheLimits, TokenCache};
use crate::config::AlbConfig;
use crate::jose::{decode_padded, json_object, non_null, split};
use crate::jwt::{Expected, MAX_TOKEN_LEN};
use crate::rejection::Rejection;

#[derive(Deserialize)]
struct AlbHeader {
    #[serde(default, deserialize_with = "non_null")]
    alg: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    kid: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    signer: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    client: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    iss: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    exp: Option<f64>,
}

#[derive(Deserialize)]
struct AlbPayload {
    #[serde(default, deserialize_with = "non_null")]
    sub: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    iss: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    exp: Option<f64>,
}

/// A verified data token, as cached: its user, the pool it was checked
/// against, and when it stops being valid.
struct AlbVerified {
    sub: Box<str>,
    issuer: Box<str>,
    exp: f64,
}

impl CacheEntry for AlbVerified {
    fn expires_at(&self) -> f64 {
        self.exp
    }

    fn heap_bytes(&self) -> usize {
        self.sub.len() + self.issuer.len()
    }
}

/// What the caller's request says about the user, to be tied together.
pub struct Identities<'a> {
    /// The verified access token's `sub`.
    pub access_sub: &'a str,
    /// The `x-amzn-oidc-identity` header, if sent.
    pub identity_header: Option<&'a str>,
}

/// Verifies `x-amzn-oidc-data` against the configured ALB.
pub struct AlbVerifier {
    arn: String,
    keys: AlbKeys,
    cache: TokenCache<AlbVerified>,
}

impl AlbVerifier {
    /// A verifier for `alb`, keeping verified data tokens within `limits`.
    pub fn new(alb: &AlbConfig, limits: CacheLimits, keys: AlbKeys) -> AlbVerifier {
        AlbVerifier {
            arn: alb.arn().to_string(),
            keys,
            cache: TokenCache::new(limits),
        }
    }

    /// Rule 8, for a request whose access token has already verified against
    /// `pool` (the data token must name the same pool and an allowed client).
    /// A data token verified before is answered from the cache (keyed by its
    /// exact text, never past its earliest `exp`); the identities are tied on
    /// every request.
    pub async fn verify(
        &self,
        data: &str,
        who: Identities<'_>,
        pool: &Expected,
        now: f64,
    ) -> Result<(), Rejection> {
        let cached = self.cache.get(data, now);
        let verified = match cached.filter(|hit| *hit.issuer == *pool.issuer) {
            Some(hit) => hit,
            None => {
                let fresh = Arc::new(
                    self.verify_uncached(data, who.access_sub, pool, now)
                        .await?,
                );
                self.cache.insert(data, fresh.clone());
                fresh
            }
        };
        let sub = &*verified.sub;
        if sub != who.access_sub || who.identity_header != Some(sub) {
            return Err(Rejection::IdentityMismatch);
        }
        Ok(())
    }

    /// The data token's checks up to its `sub`, for a request whose access
    /// token verified with `sub` `caller`.
    async fn verify_uncached(
        &self,
        data: &str,
        caller: &str,
        pool: &Expected,
        now: f64,
    ) -> Result<AlbVerified, Rejection> {
        let parsed = parse(data)?;
        let header = &parsed.header;
        if header.alg.as_deref() != Some("ES256") {
            return Err(Rejection::AlbAlg);
        }
        let kid = header
            .kid
            .as_deref()
            .filter(|k| is_uuid(k))
            .ok_or(Rejection::AlbKid)?;
        if header.signer.as_deref() != Some(self.arn.as_str()) {
            return Err(Rejection::AlbSigner);
        }
        let key = self.keys.key(kid, Some(caller)).await?;
        key.verify(parsed.signing_input, &parsed.signature)?;
        check_claims(header, &parsed.payload, pool, now)?;
        let sub = parsed.payload.sub.ok_or(Rejection::IdentityMismatch)?;
        Ok(AlbVerified {
            sub: sub.into_boxed_str(),
            issuer: pool.issuer.as_str().into(),
            // check_claims made sure both are present.
            exp: header
                .exp
                .unwrap_or(0.0)
                .min(parsed.payload.exp.unwrap_or(0.0)),
        })
    }
}

/// Client, expiry and issuer in header and payload, after the signature.
fn check_claims(
    header: &AlbHeader,
    payload: &AlbPayload,
    pool: &Expected,
    now: f64,
) -> Result<(), Rejection> {
    match &header.client {
        Some(c) if pool.client_ids.iter().any(|a| a == c) => {}
        _ => return Err(Rejection::AlbClient),
    }
    let leeway = pool.leeway.as_secs_f64();
    for exp in [header.exp, payload.exp] {
        if !exp.is_some_and(|e| now < e + leeway) {
            return Err(Rejection::AlbExpired);
        }
    }
    for iss in [&header.iss, &payload.iss] {
        if iss.as_deref() != Some(pool.issuer.as_str()) {
            return Err(Rejection::AlbIssuer);
        }
    }
    Ok(())
}

/// A data token that passed the shape and type checks.
struct AlbParts<'a> {
    signing_input: &'a str,
    signature: Vec<u8>,
    header: AlbHeader,
    payload: AlbPayload,
}

/// Shape and types: three parts, padding-tolerant base64url, JSON objects.
fn parse(data: &str) -> Result<AlbParts<'_>, Rejection> {
    if data.len() > MAX_TOKEN_LEN {
        return Err(Rejection::AlbDataMalformed);
    }
    let parts = split(data).ok_or(Rejection::AlbDataMalformed)?;
    let decode = |part: &str| decode_padded(part).ok_or(Rejection::AlbDataMalformed);
    let header: AlbHeader =
        json_object(&decode(parts.header)?).ok_or(Rejection::AlbDataMalformed)?;
    let payload: AlbPayload =
        json_object(&decode(parts.payload)?).ok_or(Rejection::AlbDataMalformed)?;
    let signature = decode(parts.signature)?;
    Ok(AlbParts {
        signing_input: parts.signing_input,
        signature,
        header,
        payload,
    })
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb_keys::parse_pem_key;
    use crate::fetch::Fetcher;
    use crate::fetch_queue::MAX_PENDING_TARGETS;
    use crate::key_fetch::{KeyTiming, MAX_WAIT_INTERVALS};
    use crate::metrics::Metrics;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use testkit::keys::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    /// A loopback stand-in for ALB's public key endpoint, serving the ALB
    /// stand-in key's PEM for any path; counts requests.
    async fn key_endpoint(pem: String, status: u16) -> (String, Arc<AtomicUsize>) {
        key_endpoint_by_path(pem, move |_| status).await
    }

    /// Like [`key_endpoint`], with the status chosen by the request's path.
    async fn key_endpoint_by_path(
        pem: String,
        status_of: impl Fn(&str) -> u16 + Send + 'static,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split(' ').nth(1).unwrap_or("");
                let status = status_of(path);
                let body = if status == 200 { pem.as_str() } else { "" };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        (url, hits)
    }

    async fn verifier(key: &AlbStandInKey, status: u16) -> (AlbVerifier, Arc<AtomicUsize>) {
        verifier_with_cache(key, status, 0).await
    }

    async fn verifier_with_cache(
        key: &AlbStandInKey,
        status: u16,
        cache_size: u64,
    ) -> (AlbVerifier, Arc<AtomicUsize>) {
        let (url, hits) = key_endpoint(key.pem(), status).await;
        let limits = CacheLimits {
            entries: cache_size,
            bytes: 1 << 20,
        };
        (verifier_at(url, KeyTiming::default(), limits), hits)
    }

    fn verifier_at(key_url: String, timing: KeyTiming, limits: CacheLimits) -> AlbVerifier {
        let alb = AlbConfig::new(ALB_ARN)
            .unwrap()
            .with_key_url(&key_url)
            .unwrap();
        let keys = AlbKeys::new(
            key_url,
            Fetcher::new().unwrap(),
            Arc::new(Metrics::default()),
            timing,
        );
        AlbVerifier::new(&alb, limits, keys)
    }

    /// The pool the stand-in's data tokens name.
    fn pool() -> Expected {
        Expected {
            issuer: ISSUER.into(),
            client_ids: vec![CLIENT.into()],
            leeway: Duration::ZERO,
        }
    }

    fn who() -> Identities<'static> {
        Identities {
            access_sub: SUB,
            identity_header: Some(SUB),
        }
    }

    async fn verify_with(
        v: &AlbVerifier,
        key: &AlbStandInKey,
        edit: impl FnOnce(&mut Value, &mut Value),
    ) -> Result<(), Rejection> {
        let exp = now() + 60.0;
        let (mut h, mut p) = (alb_header(exp), alb_payload(exp));
        edit(&mut h, &mut p);
        v.verify(&key.sign(&h, &p, true), who(), &pool(), now())
            .await
    }

    #[tokio::test]
    async fn rule8_a_padded_alb_token_verifies_over_the_raw_padded_input() {
        let key = AlbStandInKey::generate();
        let (v, hits) = verifier(&key, 200).await;
        let exp = now() + 60.0;
        let tok = key.sign(&alb_header(exp), &alb_payload(exp), true);
        assert!(
            tok.contains('='),
            "the test token must carry padding: {tok}"
        );
        assert_eq!(v.verify(&tok, who(), &pool(), now()).await, Ok(()));
        let unpadded = key.sign(&alb_header(exp), &alb_payload(exp), false);
        assert_eq!(v.verify(&unpadded, who(), &pool(), now()).await, Ok(()));
        // Stripping the padding changes the signed text: the signature no longer matches.
        let stripped: String = {
            let (input, sig) = tok.rsplit_once('.').unwrap();
            format!("{}.{sig}", input.replace('=', ""))
        };
        assert_eq!(
            v.verify(&stripped, who(), &pool(), now()).await,
            Err(Rejection::AlbSignature)
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the key is fetched once and cached"
        );
    }

    #[tokio::test]
    async fn rule8_signature_must_verify_under_the_alb_key() {
        let key = AlbStandInKey::generate();
        let (v, _) = verifier(&key, 200).await;
        let other = AlbStandInKey::generate();
        assert_eq!(
            verify_with(&v, &other, |_, _| {}).await,
            Err(Rejection::AlbSignature)
        );
    }

    #[tokio::test]
    async fn rule8_header_checks() {
        let key = AlbStandInKey::generate();
        let (v, _) = verifier(&key, 200).await;
        let cases: Vec<(&str, Value, Rejection)> = vec![
            ("alg", json!("RS256"), Rejection::AlbAlg),
            ("alg", json!("none"), Rejection::AlbAlg),
            ("kid", json!("../../etc/passwd"), Rejection::AlbKid),
            ("kid", json!("not-a-uuid"), Rejection::AlbKid),
            (
                "signer",
                json!(
                    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/other/1"
                ),
                Rejection::AlbSigner,
            ),
            ("client", json!("client9"), Rejection::AlbClient),
            ("exp", json!(now() - 1.0), Rejection::AlbExpired),
            ("iss", json!("https://evil.example"), Rejection::AlbIssuer),
            ("exp", json!("soon"), Rejection::AlbDataMalformed),
        ];
        for (member, value, want) in cases {
            let got = verify_with(&v, &key, |h, _| h[member] = value.clone()).await;
            assert_eq!(got, Err(want), "{member}={value}");
        }
        for member in ["signer", "client", "exp", "iss"] {
            let got = verify_with(&v, &key, |h, _| {
                h.as_object_mut().unwrap().remove(member);
            })
            .await;
            assert!(got.is_err(), "missing {member}");
        }
    }

    #[tokio::test]
    async fn rule8_payload_exp_and_iss_are_checked() {
        let key = AlbStandInKey::generate();
        let (v, _) = verifier(&key, 200).await;
        let got = verify_with(&v, &key, |_, p| p["exp"] = json!(now() - 1.0)).await;
        assert_eq!(got, Err(Rejection::AlbExpired));
        let got = verify_with(&v, &key, |_, p| {
            p.as_object_mut().unwrap().remove("exp");
        })
        .await;
        assert_eq!(got, Err(Rejection::AlbExpired));
        let got = verify_with(&v, &key, |_, p| p["iss"] = json!("https://evil.example")).await;
        assert_eq!(got, Err(Rejection::AlbIssuer));
    }

    #[tokio::test]
    async fn rule8_identities_are_tied_together() {
        let key = AlbStandInKey::generate();
        let (v, _) = verifier(&key, 200).await;
        let exp = now() + 60.0;
        let tok = key.sign(&alb_header(exp), &alb_payload(exp), true);
        for who in [
            Identities {
                access_sub: "someone-else",
                identity_header: Some(SUB),
            },
            Identities {
                access_sub: SUB,
                identity_header: Some("someone-else"),
            },
            Identities {
                access_sub: SUB,
                identity_header: None,
            },
        ] {
            assert_eq!(
                v.verify(&tok, who, &pool(), now()).await,
                Err(Rejection::IdentityMismatch)
            );
        }
    }

    #[tokio::test]
    async fn rule8_malformed_data_is_refused() {
        let key = AlbStandInKey::generate();
        let (v, hits) = verifier(&key, 200).await;
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &format!("{}.{}.{}", b64(b"[1]"), b64(b"{}"), b64(b"s")),
        ] {
            assert_eq!(
                v.verify(bad, who(), &pool(), now()).await,
                Err(Rejection::AlbDataMalformed),
                "{bad}"
            );
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "nothing is fetched for malformed data"
        );
    }

    #[tokio::test]
    async fn rule8_a_kid_whose_url_answers_404_is_penalised() {
        let key = AlbStandInKey::generate();
        let (v, hits) = verifier(&key, 404).await;
        for _ in 0..5 {
            assert_eq!(
                verify_with(&v, &key, |_, _| {}).await,
                Err(Rejection::AlbUnknownKid)
            );
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "a refused kid is not refetched within the penalty"
        );
    }

    #[tokio::test]
    async fn rule8_a_transient_failure_is_a_503_and_the_next_request_fetches_again() {
        let key = AlbStandInKey::generate();
        let server = KeyServer::start(Answer::Status(503, String::new())).await;
        let v = verifier_at(server.base.clone(), fast_timing(), NO_CACHE);
        assert_eq!(
            verify_with(&v, &key, |_, _| {}).await,
            Err(Rejection::AlbKeyUnavailable)
        );
        assert_eq!(Rejection::AlbKeyUnavailable.status(), 503);
        server.set(Answer::Hangup);
        assert_eq!(
            verify_with(&v, &key, |_, _| {}).await,
            Err(Rejection::AlbKeyUnavailable),
            "a connection closed unanswered is transient too"
        );
        server.set(Answer::Body(key.pem()));
        let t0 = Instant::now();
        assert_eq!(verify_with(&v, &key, |_, _| {}).await, Ok(()));
        assert!(
            t0.elapsed() <= fast_timing().interval * 2,
            "the endpoint recovered: the next slot fetches, {:?}",
            t0.elapsed()
        );
        // The first fetch, the hang-up and its one retry, the recovery.
        assert_eq!(server.hits(), 4);
    }

    #[tokio::test]
    async fn rule8_a_kept_key_is_dropped_once_its_url_answers_404() {
        let key = AlbStandInKey::generate();
        let server = KeyServer::start(Answer::Body(key.pem())).await;
        let timing = KeyTiming {
            max_age: Duration::from_millis(200),
            interval: Duration::from_millis(20),
            ..KeyTiming::default()
        };
        let v = verifier_at(server.base.clone(), timing, NO_CACHE);
        assert_eq!(verify_with(&v, &key, |_, _| {}).await, Ok(()));
        server.set(Answer::Status(404, String::new()));
        assert_eq!(
            verify_with(&v, &key, |_, _| {}).await,
            Ok(()),
            "kept, younger than the age"
        );
        assert_eq!(server.hits(), 1);
        tokio::time::sleep(timing.max_age).await;
        for _ in 0..3 {
            assert_eq!(
                verify_with(&v, &key, |_, _| {}).await,
                Err(Rejection::AlbUnknownKid)
            );
        }
        assert_eq!(server.hits(), 2, "re-validated once, then penalised");
    }

    #[tokio::test]
    async fn rule8_cached_data_tokens_still_tie_identities_and_expire() {
        let key = AlbStandInKey::generate();
        let (v, _) = verifier_with_cache(&key, 200, 100).await;
        let exp = (now() + 60.0).floor();
        let tok = key.sign(&alb_header(exp), &alb_payload(exp - 30.0), true);
        assert_eq!(v.verify(&tok, who(), &pool(), now()).await, Ok(()));
        assert_eq!(
            v.verify(&tok, who(), &pool(), now()).await,
            Ok(()),
            "cache hit"
        );
        let other = Identities {
            access_sub: "someone-else",
            identity_header: Some(SUB),
        };
        assert_eq!(
            v.verify(&tok, other, &pool(), now()).await,
            Err(Rejection::IdentityMismatch)
        );
        // The earlier of the two exps bounds the entry; past it, full verification refuses.
        assert_eq!(
            v.verify(&tok, who(), &pool(), exp - 30.0).await,
            Err(Rejection::AlbExpired)
        );
        // A changed byte never hits the cache.
        let (input, sig) = tok.rsplit_once('.').unwrap();
        let swap = if sig.starts_with('A') { "B" } else { "A" };
        let forged = format!("{input}.{swap}{}", &sig[1..]);
        assert!(v.verify(&forged, who(), &pool(), now()).await.is_err());
    }

    /// The data-token cache off: every request goes to the keys.
    const NO_CACHE: CacheLimits = CacheLimits {
        entries: 0,
        bytes: 0,
    };

    /// Short fetch intervals, so the flood tests take a fraction of a second.
    fn fast_timing() -> KeyTiming {
        KeyTiming {
            interval: Duration::from_millis(100),
            ..KeyTiming::default()
        }
    }

    /// `x-amzn-oidc-data` for `kid`, signed by `key`, with the right signer.
    fn token_for(key: &AlbStandInKey, kid: &str) -> String {
        let exp = now() + 60.0;
        let mut h = alb_header(exp);
        h["kid"] = json!(kid);
        key.sign(&h, &alb_payload(exp), true)
    }

    /// A fresh UUID `kid` per `i`, never the stand-in's.
    fn junk_kid(i: usize) -> String {
        format!("0bad0000-8d7e-4b1a-9c0d-{i:012}")
    }

    /// Another verified caller than [`who`], by number (refused before the
    /// identities are tied, so its `sub` need not match the data token's).
    fn caller(i: usize) -> Identities<'static> {
        Identities {
            access_sub: Box::leak(format!("caller-{i}").into_boxed_str()),
            identity_header: Some(SUB),
        }
    }

    /// A refusal for a junk `kid`: its URL's 404, or no place or slot for it.
    fn refused_junk(r: Result<(), Rejection>) -> bool {
        matches!(
            r,
            Err(Rejection::AlbUnknownKid | Rejection::AlbKeyUnavailable)
        )
    }

    #[tokio::test]
    async fn rule8_a_flood_of_fresh_kids_is_bounded_by_the_fetch_rate() {
        let key = AlbStandInKey::generate();
        let (url, hits) = key_endpoint(key.pem(), 404).await;
        let timing = fast_timing();
        let v = Arc::new(verifier_at(url, timing, NO_CACHE));
        // A different caller per kid: each may hold a place in the queue.
        let flood = |kids: std::ops::Range<usize>| {
            let tasks: Vec<_> = kids
                .map(|i| {
                    let (v, t) = (v.clone(), token_for(&key, &junk_kid(i)));
                    tokio::spawn(async move { v.verify(&t, caller(i), &pool(), now()).await })
                })
                .collect();
            async move {
                for t in tasks {
                    let r = t.await.unwrap();
                    assert!(refused_junk(r), "{r:?}");
                }
            }
        };
        let bound = |elapsed: Duration| {
            (elapsed.as_secs_f64() / timing.interval.as_secs_f64()) as usize + 1
        };
        let t0 = Instant::now();
        flood(0..20).await;
        let (after_flood, elapsed) = (hits.load(Ordering::SeqCst), t0.elapsed());
        assert!(
            (1..=bound(elapsed)).contains(&after_flood),
            "one fetch now and at most one per slot while they wait, got {after_flood} in {elapsed:?}"
        );
        assert!(
            elapsed <= timing.interval * (MAX_WAIT_INTERVALS + 1),
            "a request waits at most {MAX_WAIT_INTERVALS} intervals, took {elapsed:?}"
        );
        // The same kids again: the fetched ones are penalised, the rest queue again.
        flood(0..20).await;
        let (total, elapsed) = (hits.load(Ordering::SeqCst), t0.elapsed());
        assert!(total <= bound(elapsed), "{total} fetches in {elapsed:?}");
        assert!(drained(&v).await, "nothing stays queued");
    }

    /// True once no `kid` is queued or being fetched (a fetch whose waiters
    /// all left still ends on its own).
    async fn drained(v: &AlbVerifier) -> bool {
        for _ in 0..100 {
            if v.keys.queue().len() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn rule8_one_caller_holds_one_place_in_the_queue() {
        let key = AlbStandInKey::generate();
        let (url, hits) = key_endpoint(key.pem(), 404).await;
        let v = Arc::new(verifier_at(url, fast_timing(), NO_CACHE));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (v, t) = (v.clone(), token_for(&key, &junk_kid(i)));
                tokio::spawn(async move { v.verify(&t, who(), &pool(), now()).await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let busy = results
            .iter()
            .filter(|r| **r == Err(Rejection::AlbKeyUnavailable))
            .count();
        let refused = results
            .iter()
            .filter(|r| **r == Err(Rejection::AlbUnknownKid))
            .count();
        assert_eq!((busy, refused), (19, 1), "{results:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rule8_one_callers_flood_of_junk_kids_cannot_keep_out_a_real_new_key() {
        const KIDS_PER_ROUND: usize = 75;
        const REQUESTS_PER_KID: usize = 16;
        const REAL_REQUESTS: usize = 12;
        let key = Arc::new(AlbStandInKey::generate());
        let real = format!("/{ALB_KID}");
        let (url, hits) =
            key_endpoint_by_path(key.pem(), move |path| if path == real { 200 } else { 404 }).await;
        let timing = fast_timing();
        let v = Arc::new(verifier_at(url, timing, NO_CACHE));
        let t0 = Instant::now();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The attacker: one caller with one valid token, rounds of 75 fresh
        // kids with the right signer, 16 requests each, none waiting for the
        // answers before it.
        let mallory = || Identities {
            access_sub: "mallory",
            identity_header: Some("mallory"),
        };
        let attacker = {
            let (v, key, stop) = (v.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut kids = 0;
                while !stop.load(Ordering::SeqCst) {
                    for _ in 0..KIDS_PER_ROUND {
                        let t = token_for(&key, &junk_kid(kids));
                        kids += 1;
                        for _ in 0..REQUESTS_PER_KID {
                            let (v, t) = (v.clone(), t.clone());
                            sent.push(tokio::spawn(async move {
                                v.verify(&t, mallory(), &pool(), now()).await
                            }));
                        }
                    }
                    tokio::time::sleep(timing.interval).await;
                }
                for s in &mut sent {
                    let r = s.await.unwrap();
                    assert!(refused_junk(r), "{r:?}");
                }
                (kids, sent.len())
            })
        };
        // The flood holds the queue before the real key is first asked for.
        tokio::time::sleep(timing.interval * 5 / 2).await;
        let asked = Instant::now();
        let real = token_for(&key, ALB_KID);
        let mut requests = Vec::new();
        // Live traffic for the new key from a signed-in user, two requests
        // about once per interval; each must verify (a request waits at most
        // MAX_WAIT_INTERVALS for its kid's fetch to start).
        for _ in 0..REAL_REQUESTS / 2 {
            for _ in 0..2 {
                let (v, t) = (v.clone(), real.clone());
                requests.push(tokio::spawn(async move {
                    let r = v.verify(&t, who(), &pool(), now()).await;
                    (r, Instant::now())
                }));
            }
            tokio::time::sleep(timing.interval * 11 / 10).await;
        }
        stop.store(true, Ordering::SeqCst);
        let (junk_kids, junk_requests) = attacker.await.unwrap();
        let (mut real_ok, mut first_ok) = (0, None);
        for r in requests {
            let (r, at) = r.await.unwrap();
            assert_eq!(r, Ok(()), "a real request was refused");
            real_ok += 1;
            first_ok = Some(first_ok.map_or(at, |t: Instant| t.min(at)));
        }
        assert!(drained(&v).await, "nothing stays queued");
        let (fetches, elapsed) = (hits.load(Ordering::SeqCst), t0.elapsed());
        eprintln!(
            "flood: {junk_requests} junk requests for {junk_kids} junk kids from one caller, \
             {} junk kids fetched; real key: {real_ok} of {REAL_REQUESTS} requests verified, \
             the first after {:?}; {fetches} fetches in {elapsed:?}",
            fetches - 1,
            first_ok.map(|at| at - asked)
        );
        let bound = (elapsed.as_secs_f64() / timing.interval.as_secs_f64()) as usize + 1;
        assert!(fetches <= bound, "{fetches} fetches in {elapsed:?}");
        assert!(
            junk_kids > 10 * fetches,
            "the flood outnumbered the slots: {junk_kids} junk kids"
        );
    }

    #[tokio::test]
    async fn rule8_the_queue_of_kids_waiting_for_a_fetch_is_bounded() {
        let key = AlbStandInKey::generate();
        let (url, hits) = key_endpoint(key.pem(), 404).await;
        // Slower slots than the other tests: every task must reach the queue
        // before the first waiters' time is up, however loaded the machine.
        let timing = KeyTiming {
            interval: Duration::from_millis(500),
            ..KeyTiming::default()
        };
        let v = Arc::new(verifier_at(url, timing, NO_CACHE));
        let extra = 50;
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..MAX_PENDING_TARGETS + extra)
            .map(|i| {
                let (v, t) = (v.clone(), token_for(&key, &junk_kid(i)));
                tokio::spawn(async move { v.verify(&t, caller(i), &pool(), now()).await })
            })
            .collect();
        // Every task has run once each is waiting in the queue or finished
        // (refused at once, or its kid's fetch failed: one per slot).
        let all_ran = async {
            loop {
                let pending = v.keys.queue().len();
                let finished = tasks.iter().filter(|t| t.is_finished()).count();
                if pending + finished == tasks.len() {
                    return (pending, finished);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let (pending, finished) = tokio::time::timeout(Duration::from_secs(10), all_ran)
            .await
            .expect("every task reaches the queue");
        // Each fetch frees one place: the bounds hold up to the fetches so far.
        let fetched = hits.load(Ordering::SeqCst);
        assert!(pending <= MAX_PENDING_TARGETS, "{pending} kids pending");
        assert!(
            pending + fetched >= MAX_PENDING_TARGETS,
            "the queue filled: {pending} pending, {fetched} fetched"
        );
        assert!(
            finished + fetched >= extra,
            "the kids past the bound are refused at once: {finished} finished, {fetched} fetched"
        );
        // A kid already waiting still takes waiters while the queue is full.
        let waiting = junk_kid(MAX_PENDING_TARGETS - 1);
        let again = {
            let (v, t) = (v.clone(), token_for(&key, &waiting));
            let same = caller(MAX_PENDING_TARGETS - 1);
            tokio::spawn(async move { v.verify(&t, same, &pool(), now()).await })
        };
        tokio::time::sleep(timing.interval / 4).await;
        assert!(!again.is_finished(), "it joined the waiting kid");
        let joined = v.keys.queue().waiters(&waiting);
        assert_eq!(joined, Some(2));
        for t in tasks {
            let r = t.await.unwrap();
            assert!(refused_junk(r), "{r:?}");
        }
        let r = again.await.unwrap();
        assert!(refused_junk(r), "{r:?}");
        let (fetches, elapsed) = (hits.load(Ordering::SeqCst), t0.elapsed());
        let bound = (elapsed.as_secs_f64() / timing.interval.as_secs_f64()) as usize + 1;
        assert!(fetches <= bound, "{fetches} fetches in {elapsed:?}");
        assert!(
            drained(&v).await,
            "every waiter left: the queue is empty again"
        );
    }

    #[tokio::test]
    async fn rule8_a_kept_key_stays_when_its_refetch_fails_for_now() {
        let key = AlbStandInKey::generate();
        let server = KeyServer::start(Answer::Body(key.pem())).await;
        let timing = KeyTiming {
            max_age: Duration::from_millis(100),
            interval: Duration::from_millis(50),
            ..KeyTiming::default()
        };
        let v = verifier_at(server.base.clone(), timing, NO_CACHE);
        assert_eq!(verify_with(&v, &key, |_, _| {}).await, Ok(()));
        server.set(Answer::Status(500, String::new()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            verify_with(&v, &key, |_, _| {}).await,
            Ok(()),
            "the refetch failed for now; the kept key verifies"
        );
        assert_eq!(server.hits(), 2, "the old key was fetched again");
        assert_eq!(
            verify_with(&v, &key, |_, _| {}).await,
            Ok(()),
            "tried again a penalty length later, not on every request"
        );
        assert_eq!(server.hits(), 2);
        let other = "0f1c3a52-8d7e-4b1a-9c0d-2e3f4a5b6c7d";
        assert_eq!(
            verify_with(&v, &key, |h, _| h["kid"] = json!(other)).await,
            Err(Rejection::AlbKeyUnavailable),
            "a kid with no kept key: 503 while the endpoint fails"
        );
    }

    #[test]
    fn uuid_and_pem_parsing() {
        assert!(is_uuid(ALB_KID));
        assert!(!is_uuid("6f1c3a52-8d7e-4b1a-9c0d-2e3f4a5b6c7"));
        assert!(!is_uuid("6f1c3a52-8d7e-4b1a-9c0d-2e3f4a5b6c7g"));
        assert!(parse_pem_key(AlbStandInKey::generate().pem().as_bytes()).is_some());
        assert!(
            parse_pem_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_none()
        );
        assert!(parse_pem_key(b"garbage").is_none());
    }
}
