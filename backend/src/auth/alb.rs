//! The optional check of the ALB's `x-amzn-oidc-data` token (rule 8).
//!
//! ALB signs it with ES256 and encodes its parts as base64url *with* `=`
//! padding, so the parts are decoded padding-tolerantly and the signature is
//! checked over the raw `header.payload` text exactly as received. The key is
//! fetched from the region of the configured ARN (never from anything in the
//! token; the `kid` must be a UUID before it goes into the URL) and cached by
//! `kid`. A `kid` whose fetch failed is not fetched again for the penalty
//! length, and concurrent fetches of one `kid` are shared.

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::alphabet::{STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use super::cache::{key_of, Expires, TokenCache};
use super::fetch::Fetcher;
use super::jwks::PENALTY;
use super::jwt::{json_object, non_null, MAX_TOKEN_LEN};
use crate::config::AlbConfig;
use crate::error::Rejection;
use crate::metrics::Metrics;

/// Largest key document accepted (a P-256 PEM is about 180 bytes).
const MAX_KEY_BYTES: usize = 4 * 1024;
/// ALB key ids held at once.
const MAX_KEYS: u64 = 64;

/// base64url that accepts parts with or without `=` padding, as ALB sends them.
const PADDED_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// The PEM body's standard base64.
const PEM_BASE64: GeneralPurpose = GeneralPurpose::new(&STANDARD, GeneralPurposeConfig::new());

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

/// A verified data token, as cached: its user and when it stops being valid.
struct AlbVerified {
    sub: Box<str>,
    exp: f64,
}

impl Expires for AlbVerified {
    fn expires_at(&self) -> f64 {
        self.exp
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
    key_url: String,
    issuer: String,
    client_ids: Vec<String>,
    leeway: f64,
    fetcher: Fetcher,
    metrics: Arc<Metrics>,
    keys: moka::future::Cache<String, Arc<ParsedPublicKey>>,
    failed: moka::sync::Cache<String, ()>,
    cache: TokenCache<AlbVerified>,
}

impl AlbVerifier {
    /// A verifier for `alb`, accepting tokens for `issuer` and `client_ids`,
    /// keeping up to `cache_size` verified data tokens (0: none).
    pub fn new(
        alb: &AlbConfig,
        issuer: &str,
        client_ids: &[String],
        leeway: Duration,
        cache_size: u64,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
    ) -> AlbVerifier {
        AlbVerifier {
            arn: alb.arn.clone(),
            key_url: alb.key_url.clone(),
            issuer: issuer.to_string(),
            client_ids: client_ids.to_vec(),
            leeway: leeway.as_secs_f64(),
            fetcher,
            metrics,
            keys: moka::future::Cache::new(MAX_KEYS),
            failed: moka::sync::Cache::builder()
                .max_capacity(1024)
                .time_to_live(PENALTY)
                .build(),
            cache: TokenCache::new(cache_size),
        }
    }

    /// Rule 8, for a request whose access token has already verified. A data
    /// token verified before is answered from the cache (keyed by its SHA-256,
    /// never past its earliest `exp`); the identities are tied on every request.
    pub async fn verify(&self, data: &str, who: Identities<'_>, now: f64) -> Result<(), Rejection> {
        let key = self.cache.enabled().then(|| key_of(data));
        let verified = match key.as_ref().and_then(|k| self.cache.get(k, now)) {
            Some(hit) => hit,
            None => {
                let fresh = Arc::new(self.verify_uncached(data, now).await?);
                if let Some(k) = key {
                    self.cache.insert(k, fresh.clone());
                }
                fresh
            }
        };
        let sub = &*verified.sub;
        if sub != who.access_sub || who.identity_header != Some(sub) {
            return Err(Rejection::IdentityMismatch);
        }
        Ok(())
    }

    async fn verify_uncached(&self, data: &str, now: f64) -> Result<AlbVerified, Rejection> {
        let (signing_input, header, payload, signature) = parse(data)?;
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
        let key = self.key(kid).await?;
        key.verify_sig(signing_input.as_bytes(), &signature)
            .map_err(|_| Rejection::AlbSignature)?;
        self.check_claims(&header, &payload, now)?;
        let sub = payload.sub.ok_or(Rejection::IdentityMismatch)?;
        Ok(AlbVerified {
            sub: sub.into_boxed_str(),
            // check_claims made sure both are present.
            exp: header.exp.unwrap_or(0.0).min(payload.exp.unwrap_or(0.0)),
        })
    }

    /// Client, expiry and issuer in header and payload, after the signature.
    fn check_claims(
        &self,
        header: &AlbHeader,
        payload: &AlbPayload,
        now: f64,
    ) -> Result<(), Rejection> {
        match &header.client {
            Some(c) if self.client_ids.iter().any(|a| a == c) => {}
            _ => return Err(Rejection::AlbClient),
        }
        for exp in [header.exp, payload.exp] {
            if !exp.is_some_and(|e| now < e + self.leeway) {
                return Err(Rejection::AlbExpired);
            }
        }
        for iss in [&header.iss, &payload.iss] {
            if iss.as_deref() != Some(self.issuer.as_str()) {
                return Err(Rejection::AlbIssuer);
            }
        }
        Ok(())
    }

    /// The public key for `kid`: cached, shared between concurrent callers,
    /// and not refetched for the penalty length after a failure.
    async fn key(&self, kid: &str) -> Result<Arc<ParsedPublicKey>, Rejection> {
        if self.failed.contains_key(kid) {
            return Err(Rejection::AlbKeyUnavailable);
        }
        let url = format!("{}/{kid}", self.key_url);
        let fetched = self
            .keys
            .try_get_with_by_ref(kid, async {
                let body = self.fetcher.get(&url, MAX_KEY_BYTES).await;
                self.metrics.alb_key_fetch(body.is_ok());
                let body = body.map_err(|e| e.to_string())?;
                parse_pem_key(&body)
                    .map(Arc::new)
                    .ok_or_else(|| "not a P-256 public key PEM".to_string())
            })
            .await;
        fetched.map_err(|e| {
            tracing::warn!(url = %url, error = %e, "ALB public key fetch failed");
            self.failed.insert(kid.to_string(), ());
            Rejection::AlbKeyUnavailable
        })
    }
}

type AlbParts<'a> = (&'a str, AlbHeader, AlbPayload, Vec<u8>);

/// Shape and types: three parts, padding-tolerant base64url, JSON objects.
fn parse(data: &str) -> Result<AlbParts<'_>, Rejection> {
    if data.len() > MAX_TOKEN_LEN {
        return Err(Rejection::AlbDataMalformed);
    }
    let mut parts = data.split('.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            (h, p, s)
        }
        _ => return Err(Rejection::AlbDataMalformed),
    };
    let decode = |part: &str| {
        PADDED_URL_SAFE
            .decode(part)
            .map_err(|_| Rejection::AlbDataMalformed)
    };
    let header: AlbHeader = json_object(&decode(h)?).ok_or(Rejection::AlbDataMalformed)?;
    let payload: AlbPayload = json_object(&decode(p)?).ok_or(Rejection::AlbDataMalformed)?;
    let signature = decode(s)?;
    Ok((&data[..h.len() + 1 + p.len()], header, payload, signature))
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

/// A `-----BEGIN PUBLIC KEY-----` P-256 SubjectPublicKeyInfo.
fn parse_pem_key(pem: &[u8]) -> Option<ParsedPublicKey> {
    let text = std::str::from_utf8(pem).ok()?;
    let body = text
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = PEM_BASE64.decode(b64).ok()?;
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, der).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback stand-in for ALB's public key endpoint, serving the ALB
    /// stand-in key's PEM for any path; counts requests.
    async fn key_endpoint(pem: String, status: u16) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{pem}",
                    pem.len()
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
        let alb = AlbConfig {
            arn: ALB_ARN.into(),
            key_url: url,
        };
        let v = AlbVerifier::new(
            &alb,
            ISSUER,
            &[CLIENT.to_string()],
            Duration::ZERO,
            cache_size,
            Fetcher::new().unwrap(),
            Arc::new(Metrics::default()),
        );
        (v, hits)
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
        v.verify(&key.sign(&h, &p, true), who(), now()).await
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
        assert_eq!(v.verify(&tok, who(), now()).await, Ok(()));
        let unpadded = key.sign(&alb_header(exp), &alb_payload(exp), false);
        assert_eq!(v.verify(&unpadded, who(), now()).await, Ok(()));
        // Stripping the padding changes the signed text: the signature no longer matches.
        let stripped: String = {
            let (input, sig) = tok.rsplit_once('.').unwrap();
            format!("{}.{sig}", input.replace('=', ""))
        };
        assert_eq!(
            v.verify(&stripped, who(), now()).await,
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
                v.verify(&tok, who, now()).await,
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
                v.verify(bad, who(), now()).await,
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
    async fn rule8_key_fetch_failure_is_penalised() {
        let key = AlbStandInKey::generate();
        let (v, hits) = verifier(&key, 404).await;
        for _ in 0..5 {
            assert_eq!(
                verify_with(&v, &key, |_, _| {}).await,
                Err(Rejection::AlbKeyUnavailable)
            );
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "a failed kid is not refetched within the penalty"
        );
    }

    #[tokio::test]
    async fn rule8_cached_data_tokens_still_tie_identities_and_expire() {
        let key = AlbStandInKey::generate();
        let (v, _) = verifier_with_cache(&key, 200, 100).await;
        let exp = (now() + 60.0).floor();
        let tok = key.sign(&alb_header(exp), &alb_payload(exp - 30.0), true);
        assert_eq!(v.verify(&tok, who(), now()).await, Ok(()));
        assert_eq!(v.verify(&tok, who(), now()).await, Ok(()), "cache hit");
        let other = Identities {
            access_sub: "someone-else",
            identity_header: Some(SUB),
        };
        assert_eq!(
            v.verify(&tok, other, now()).await,
            Err(Rejection::IdentityMismatch)
        );
        // The earlier of the two exps bounds the entry; past it, full verification refuses.
        assert_eq!(
            v.verify(&tok, who(), exp - 30.0).await,
            Err(Rejection::AlbExpired)
        );
        // A changed byte never hits the cache.
        let (input, sig) = tok.rsplit_once('.').unwrap();
        let swap = if sig.starts_with('A') { "B" } else { "A" };
        let forged = format!("{input}.{swap}{}", &sig[1..]);
        assert!(v.verify(&forged, who(), now()).await.is_err());
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
