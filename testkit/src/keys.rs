//! Test keys, token minting and a loopback key server, shared by the
//! backend's unit and integration tests.
//!
//! The RSA keys stand in for a Cognito user pool's signing keys and the P-256
//! key stands in for the ALB's signing key ("ALB stand-in key"): both are
//! generated at test time and never leave the process.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The test pool's region.
pub const REGION: &str = "eu-west-1";
/// The test pool's id.
pub const POOL: &str = "eu-west-1_TestPool";
/// The test pool's issuer.
pub const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool";
/// The allowed test app client.
pub const CLIENT: &str = "client1";
/// The test user's `sub`.
pub const SUB: &str = "0f6a3b2c-1111-4222-8333-944455556666";
/// The test ALB's ARN (the signer the ALB stand-in key signs as).
pub const ALB_ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/planb-test/50dc6c495c0c9188";
/// The ALB stand-in key's id: ALB key ids are UUIDs.
pub const ALB_KID: &str = "6f1c3a52-8d7e-4b1a-9c0d-2e3f4a5b6c7d";

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The claims of a good access token for `client`, expiring at `exp`.
pub fn claims_for(client: &str, exp: f64) -> Value {
    json!({
        "sub": SUB,
        "iss": ISSUER,
        "client_id": client,
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin planb/read",
        "auth_time": exp - 3600.0,
        "iat": exp - 3600.0,
        "exp": exp,
        "jti": "5d3c2a1b-0000-4000-8000-000000000001",
        "username": "alice",
        "cognito:groups": ["admins"],
    })
}

/// A client-credentials access token's claims for [`CLIENT`] (no
/// `username`, no groups, `sub` = the client id) with `scope`.
pub fn machine_claims(scope: &str) -> Value {
    let mut c = good_claims();
    let o = c.as_object_mut().expect("claims are an object");
    o.remove("username");
    o.remove("cognito:groups");
    o.insert("sub".into(), Value::from(CLIENT));
    o.insert("scope".into(), Value::from(scope));
    c
}

/// Good claims for [`CLIENT`] expiring in an hour.
pub fn good_claims() -> Value {
    claims_for(CLIENT, (now() + 3600.0).floor())
}

/// `b64(header).b64(claims).b64(sig)` with no real signature.
pub fn raw_token(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

/// A test RSA-2048 signing key with its `kid` (a stand-in for a pool key).
pub struct TestKey {
    /// The key id in the JWKS and token headers.
    pub kid: String,
    pair: RsaKeyPair,
}

impl TestKey {
    /// Generates a fresh key (slow-ish: use [`test_key`] to share).
    pub fn generate(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            pair: RsaKeyPair::generate(KeySize::Rsa2048).expect("generate RSA key"),
        }
    }

    /// The public JWK, as Cognito publishes it.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// RS256-signs `header.claims`.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("sign");
        format!("{input}.{}", b64(&sig))
    }

    /// An RS256 token with header `{"kid", "alg": "RS256"}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"kid": self.kid, "alg": "RS256"}), claims)
    }
}

/// Shared test keys `kid-0`, `kid-1`, ... (generated once per test binary).
pub fn test_key(i: usize) -> &'static TestKey {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..3)
            .map(|i| TestKey::generate(&format!("kid-{i}")))
            .collect()
    })[i]
}

/// `{"keys": [...]}` of the given keys' JWKs.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// The ALB stand-in signing key (P-256): the real ALB key cannot exist in tests.
pub struct AlbStandInKey {
    pair: EcdsaKeyPair,
}

impl AlbStandInKey {
    /// Generates a fresh P-256 key.
    pub fn generate() -> AlbStandInKey {
        AlbStandInKey {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("generate P-256 key"),
        }
    }

    /// The public key as the ALB key endpoint serves it: a PEM SubjectPublicKeyInfo.
    pub fn pem(&self) -> String {
        let der = self.pair.public_key().as_der().expect("SPKI DER");
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// An ES256 `x-amzn-oidc-data` token; `padded` uses `=`-padded base64url like ALB does.
    pub fn sign(&self, header: &Value, payload: &Value, padded: bool) -> String {
        let enc = |b: &[u8]| if padded { URL_SAFE.encode(b) } else { b64(b) };
        let input = format!(
            "{}.{}",
            enc(header.to_string().as_bytes()),
            enc(payload.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", enc(sig.as_ref()))
    }
}

/// The header ALB puts on `x-amzn-oidc-data` for the test pool, client and ARN.
pub fn alb_header(exp: f64) -> Value {
    json!({
        "typ": "JWT",
        "kid": ALB_KID,
        "alg": "ES256",
        "iss": ISSUER,
        "client": CLIENT,
        "signer": ALB_ARN,
        "exp": exp,
    })
}

/// The user claims ALB puts in `x-amzn-oidc-data` (from the userinfo endpoint).
pub fn alb_payload(exp: f64) -> Value {
    json!({
        "sub": SUB,
        "email_verified": "true",
        "username": "alice",
        "exp": exp,
        "iss": ISSUER,
    })
}

/// What the loopback JWKS stand-in answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this body.
    Body(String),
    /// This status with a `Location` header (redirect tests) and an empty body.
    Status(u16, String),
    /// Close the connection without answering.
    Hangup,
    /// Wait this long before answering with the body.
    Slow(std::time::Duration, String),
}

/// A loopback HTTP server standing in for a key endpoint (Cognito's JWKS or
/// ALB's public keys): answers every GET with the current [`Answer`] and
/// counts requests. Raw HTTP/1.1 with `connection: close`, so one request is
/// one connection and the count is exact.
pub struct KeyServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    answer: std::sync::Arc<std::sync::Mutex<Answer>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    /// Starts serving `answer` on a free loopback port (call inside a tokio runtime).
    pub async fn start(answer: Answer) -> KeyServer {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind key server");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let answer = std::sync::Arc::new(std::sync::Mutex::new(answer));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, h) = (answer.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let (a, h) = (a.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut got = 0;
                    // Read the request head (GETs have no body).
                    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                        if got == buf.len() {
                            return;
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let answer = a.lock().unwrap().clone();
                    let (status, location, body) = match answer {
                        Answer::Body(b) => (200, String::new(), b),
                        Answer::Status(s, loc) => (s, loc, String::new()),
                        Answer::Hangup => return,
                        Answer::Slow(d, b) => {
                            tokio::time::sleep(d).await;
                            (200, String::new(), b)
                        }
                    };
                    let loc = if location.is_empty() {
                        String::new()
                    } else {
                        format!("location: {location}\r\n")
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{loc}content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        KeyServer {
            base,
            answer,
            hits,
            task,
        }
    }

    /// Serves `{"keys": [...]}` of `keys`.
    pub async fn jwks(keys: &[&TestKey]) -> KeyServer {
        KeyServer::start(Answer::Body(jwks(keys).to_string())).await
    }

    /// The JWKS URL (any path works; this one looks like Cognito's).
    pub fn url(&self) -> String {
        format!("{}/{POOL}/.well-known/jwks.json", self.base)
    }

    /// Changes what later requests get.
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Requests answered (or hung up on) so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops listening: later fetches get connection refused.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
