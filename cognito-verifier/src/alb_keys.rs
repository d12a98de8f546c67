//! The ALB's public keys by `kid`, a [`KeySource`] for [`KeyFetch`].
//!
//! The key for a `kid` is at `{key_url}/{kid}` (the URL comes from the
//! configured ARN's region, never from the token; the `kid` is a UUID before
//! it gets here), so each `kid` is its own fetch target.

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::alphabet::STANDARD;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use std::sync::Arc;

use crate::fetch::Fetcher;
use crate::fetch_queue::Failure;
use crate::kept_keys::KeyEntry;
use crate::key_fetch::{KeyFetch, KeySource, Refusals};
use crate::metrics::Metrics;
use crate::rejection::Rejection;

/// Largest key document accepted (a P-256 PEM is about 180 bytes).
const MAX_KEY_BYTES: usize = 4 * 1024;

/// An estimate of what aws-lc holds for a parsed P-256 key beside its DER:
/// the point's coordinates, and the key and EVP structures around them.
const PARSED_EC_KEY_BYTES: usize = 512;

/// The PEM body's standard base64.
const PEM_BASE64: GeneralPurpose = GeneralPurpose::new(&STANDARD, GeneralPurposeConfig::new());

/// An ALB public key, parsed once per fetched PEM (aws-lc's parsed key, as
/// for the pool's keys: see [`crate::jwks::Jwk`]).
pub struct AlbKey {
    key: ParsedPublicKey,
}

impl AlbKey {
    /// Verifies the ES256 `signature` (decoded from its base64url part, padded
    /// or not) over the raw signing input: the signed text keeps its padding.
    pub(crate) fn verify(&self, signing_input: &str, signature: &[u8]) -> Result<(), Rejection> {
        self.key
            .verify_sig(signing_input.as_bytes(), signature)
            .map_err(|_| Rejection::AlbSignature)
    }
}

/// ALB's key endpoint as a key source: one document per `kid`.
pub(crate) struct AlbKeySource {
    key_url: String,
    fetcher: Fetcher,
    metrics: Arc<Metrics>,
}

impl KeySource for AlbKeySource {
    type Key = AlbKey;
    const REFUSALS: Refusals = Refusals {
        unknown: Rejection::AlbUnknownKid,
        unusable: Rejection::AlbUnknownKid,
        unavailable: Rejection::AlbKeyUnavailable,
    };

    fn at(key_url: String, fetcher: Fetcher, metrics: Arc<Metrics>) -> Self {
        AlbKeySource {
            key_url,
            fetcher,
            metrics,
        }
    }

    fn target<'k>(&self, kid: &'k str) -> &'k str {
        kid
    }

    /// A 404 (any answer but a 5xx or 429) or a body that is not a P-256
    /// key is the endpoint's answer about the `kid`; a failure to answer is
    /// transient.
    async fn fetch(&self, kid: &str) -> Result<Vec<KeyEntry<AlbKey>>, Failure> {
        let body = self
            .fetcher
            .get(&format!("{}/{kid}", self.key_url), MAX_KEY_BYTES)
            .await;
        self.metrics.alb_key_fetch(body.is_ok());
        let (why, error) = match body {
            Ok(pem) => match parse_pem_key(&pem) {
                Some(key) => {
                    let key = Some(Arc::new(key));
                    let (kid, bytes) = (kid.to_string(), pem.len() + PARSED_EC_KEY_BYTES);
                    return Ok(vec![KeyEntry { kid, key, bytes }]);
                }
                None => (Failure::Refused, "not a P-256 public key PEM".to_string()),
            },
            Err(e) if e.is_transient() => (Failure::Transient, e.to_string()),
            Err(e) => (Failure::Refused, e.to_string()),
        };
        tracing::warn!(key_url = %self.key_url, %kid, %error, ?why, "ALB public key fetch failed");
        Err(why)
    }

    /// ALB's refusals are counted by reason only (`alb_unknown_kid`).
    fn count_penalised(&self) {}
}

/// The ALB public keys by `kid`.
pub(crate) type AlbKeys = KeyFetch<AlbKeySource>;

/// A `-----BEGIN PUBLIC KEY-----` P-256 SubjectPublicKeyInfo, checked once here.
pub(crate) fn parse_pem_key(pem: &[u8]) -> Option<AlbKey> {
    let text = std::str::from_utf8(pem).ok()?;
    let body = text
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = PEM_BASE64.decode(b64).ok()?;
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &der).ok()?;
    Some(AlbKey { key })
}
