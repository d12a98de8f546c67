//! Parsing a Cognito access token and checking its claims.
//!
//! [`parse`] does rule 1 (size, three base64url parts, JSON objects, claim
//! types) and rule 2 (`kid`, `alg` exactly RS256) without touching a key.
//! [`Claims::check`] does rules 5-7 and is only called once the signature has
//! verified (rule 4), so an attacker learns nothing about claim checks from a
//! forged token.

use serde::Deserialize;
use std::time::Duration;

use crate::jose::{
    decode_strict_into, decoded_len_max, json_object, non_null, present, split, Text,
};
use crate::rejection::Rejection;

/// Rule 1: tokens above this size are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Rule 2: a longer `kid` is refused before any key lookup. Cognito's are 44
/// bytes; the bound keeps a flood of invented kids small wherever they are held.
pub const MAX_KID_LEN: usize = 128;

/// A token that passed rules 1 and 2, ready for the signature check. It
/// borrows the token and the buffer its parts were decoded into.
#[derive(Debug)]
pub struct Parsed<'t> {
    /// The header's `kid`.
    pub kid: Text<'t>,
    /// The bytes the signature covers: `header.payload` as received.
    pub signing_input: &'t [u8],
    /// The signature, decoded from its base64url part.
    pub signature: &'t [u8],
    /// The payload's claims, type-checked but not yet trusted.
    pub claims: Claims<'t>,
}

/// The JOSE header members we look at; anything else is ignored.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(default, borrow, deserialize_with = "non_null")]
    alg: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "non_null")]
    kid: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "non_null")]
    #[allow(dead_code)] // type-checked only
    typ: Option<Text<'a>>,
    /// RFC 7515 4.1.11: extensions we do not understand must be refused.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// The claims of a Cognito access token, each with the type rule 1 demands.
/// A claim of the wrong type (an `exp` string, a `null` `sub`) fails parsing.
/// Strings borrow the decoded payload.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims<'a> {
    /// Expiry, seconds since the epoch.
    #[serde(default, deserialize_with = "non_null")]
    pub exp: Option<f64>,
    /// Not before, seconds since the epoch.
    #[serde(default, deserialize_with = "non_null")]
    pub nbf: Option<f64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, deserialize_with = "non_null")]
    #[allow(dead_code)] // type-checked only
    pub iat: Option<f64>,
    /// Issuer.
    #[serde(default, borrow, deserialize_with = "non_null")]
    pub iss: Option<Text<'a>>,
    /// Subject: the user's id.
    #[serde(default, borrow, deserialize_with = "non_null")]
    pub sub: Option<Text<'a>>,
    /// The app client the token was issued to.
    #[serde(default, borrow, deserialize_with = "non_null")]
    pub client_id: Option<Text<'a>>,
    /// `access` for access tokens.
    #[serde(default, borrow, deserialize_with = "non_null")]
    pub token_use: Option<Text<'a>>,
    /// Space-separated OAuth scopes.
    #[serde(default, borrow, deserialize_with = "non_null")]
    pub scope: Option<Text<'a>>,
    /// Token id.
    #[serde(default, borrow, deserialize_with = "non_null")]
    #[allow(dead_code)] // type-checked only
    pub jti: Option<Text<'a>>,
    /// The user's name.
    #[serde(default, borrow, deserialize_with = "non_null")]
    pub username: Option<Text<'a>>,
    /// The user's Cognito groups.
    #[serde(
        default,
        borrow,
        rename = "cognito:groups",
        deserialize_with = "non_null"
    )]
    pub groups: Option<Vec<Text<'a>>>,
    /// Whether an `aud` member is present at all (an ID token's shape).
    #[serde(default, deserialize_with = "present")]
    pub aud: bool,
}

/// What the claims must match (rules 5-7).
#[derive(Debug, Clone)]
pub struct Expected {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The accepted `client_id` values.
    pub client_ids: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Rules 1 and 2: everything that can be checked without a key. The three
/// parts are decoded into `scratch` (one allocation for all of them, reused
/// if the caller keeps it), which the result borrows.
pub fn parse<'t>(token: &'t str, scratch: &'t mut Vec<u8>) -> Result<Parsed<'t>, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::TokenTooLarge);
    }
    let parts = split(token).ok_or(Rejection::MalformedToken)?;
    let header_len = decoded_len_max(parts.header);
    let payload_len = decoded_len_max(parts.payload);
    scratch.clear();
    scratch.resize(
        header_len + payload_len + decoded_len_max(parts.signature),
        0,
    );
    let (header_out, rest) = scratch.split_at_mut(header_len);
    let (payload_out, signature_out) = rest.split_at_mut(payload_len);

    let header: Header =
        json_object(decode(parts.header, header_out)?).ok_or(Rejection::InvalidHeader)?;
    if header.alg.as_deref() != Some("RS256") || header.crit {
        return Err(Rejection::UnsupportedAlg);
    }
    let kid = header.kid.ok_or(Rejection::MissingKid)?;
    if kid.len() > MAX_KID_LEN {
        return Err(Rejection::KidTooLong);
    }
    let claims: Claims =
        json_object(decode(parts.payload, payload_out)?).ok_or(Rejection::InvalidClaims)?;
    let signature = decode(parts.signature, signature_out)?;
    Ok(Parsed {
        kid,
        signing_input: parts.signing_input.as_bytes(),
        signature,
        claims,
    })
}

/// Strict base64url into `out`, or a malformed token.
fn decode<'o>(part: &str, out: &'o mut [u8]) -> Result<&'o [u8], Rejection> {
    decode_strict_into(part, out).ok_or(Rejection::MalformedToken)
}

impl Claims<'_> {
    /// Rules 5-7, for claims whose signature has verified. `now` is seconds since the epoch.
    pub fn check(&self, expected: &Expected, now: f64) -> Result<(), Rejection> {
        let leeway = expected.leeway.as_secs_f64();
        let exp = self.exp.ok_or(Rejection::MissingExp)?;
        if now >= exp + leeway {
            return Err(Rejection::Expired);
        }
        if matches!(self.nbf, Some(nbf) if nbf > now + leeway) {
            return Err(Rejection::NotYetValid);
        }
        if self.iss.as_deref() != Some(expected.issuer.as_str()) {
            return Err(Rejection::WrongIssuer);
        }
        if self.token_use.as_deref() != Some("access") {
            return Err(Rejection::WrongTokenUse);
        }
        if self.aud {
            return Err(Rejection::AudiencePresent);
        }
        match self.client_id.as_deref() {
            Some(c) if expected.client_ids.iter().any(|a| a == c) => {}
            _ => return Err(Rejection::WrongClient),
        }
        if self.sub.is_none() {
            return Err(Rejection::MissingSub);
        }
        Ok(())
    }

    /// The scopes, split on spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use testkit::keys::{b64, claims_for, raw_token, ISSUER};

    /// [`super::parse`] with a scratch buffer of its own; both are leaked
    /// (a test's few bytes) so the result outlives the call.
    fn parse(token: &str) -> Result<Parsed<'static>, Rejection> {
        let token = Box::leak(token.to_owned().into_boxed_str());
        super::parse(token, Box::leak(Box::default()))
    }

    fn header() -> serde_json::Value {
        json!({"kid": "k1", "alg": "RS256"})
    }

    fn expected() -> Expected {
        Expected {
            issuer: ISSUER.into(),
            client_ids: vec!["client1".into(), "client2".into()],
            leeway: Duration::ZERO,
        }
    }

    const NOW: f64 = 1_800_000_000.0;

    fn check(mutate: impl FnOnce(&mut serde_json::Value)) -> Result<(), Rejection> {
        let mut c = claims_for("client1", NOW + 600.0);
        mutate(&mut c);
        let tok = raw_token(&header(), &c, b"sig");
        parse(&tok)?.claims.check(&expected(), NOW)
    }

    #[test]
    fn a_good_token_parses_and_checks() {
        assert_eq!(check(|_| {}), Ok(()));
        let tok = raw_token(&header(), &claims_for("client1", NOW + 1.0), b"sig");
        let p = parse(&tok).unwrap();
        assert_eq!(&*p.kid, "k1");
        assert_eq!(p.signature, b"sig");
        assert_eq!(p.signing_input, tok.rsplit_once('.').unwrap().0.as_bytes());
        assert_eq!(
            p.claims.scopes().collect::<Vec<_>>(),
            ["aws.cognito.signin.user.admin", "planb/read"]
        );
        let groups = p.claims.groups.as_deref().unwrap_or_default();
        assert_eq!(groups.iter().map(|g| &**g).collect::<Vec<_>>(), ["admins"]);
    }

    // Rule 1 -----------------------------------------------------------------

    #[test]
    fn rule1_oversized_token_is_refused_before_decoding() {
        let tok = format!("{}.{}.{}", "a".repeat(MAX_TOKEN_LEN), "b", "c");
        assert_eq!(parse(&tok).unwrap_err(), Rejection::TokenTooLarge);
        let mut c = claims_for("client1", NOW + 600.0);
        c["pad"] = json!("x".repeat(MAX_TOKEN_LEN));
        assert_eq!(
            parse(&raw_token(&header(), &c, b"s")).unwrap_err(),
            Rejection::TokenTooLarge
        );
    }

    #[test]
    fn rule1_not_three_base64url_parts() {
        let good = raw_token(&header(), &claims_for("client1", NOW), b"sig");
        let (h, rest) = good.split_once('.').unwrap();
        for bad in [
            String::new(),
            "abc".into(),
            format!("{h}.{rest}.x"),
            format!("{h}..x"),
            format!("{good}."),
            format!("{h}.{}", rest.replace('.', "=.")), // padding
            good.replacen('.', "+.", 1),                // not base64url
            format!("{h}!.{rest}"),
        ] {
            assert_eq!(parse(&bad).unwrap_err(), Rejection::MalformedToken, "{bad}");
        }
    }

    #[test]
    fn rule1_header_must_be_a_json_object() {
        for h in [
            "[1,2]",
            "\"RS256\"",
            "null",
            "{not json",
            "{\"alg\":\"RS256\",\"kid\":5}",
        ] {
            let tok = format!("{}.{}.{}", b64(h.as_bytes()), b64(b"{}"), b64(b"s"));
            assert_eq!(parse(&tok).unwrap_err(), Rejection::InvalidHeader, "{h}");
        }
    }

    #[test]
    fn rule1_payload_must_be_a_json_object() {
        for p in ["[1]", "1", "\"x\"", "{", "{\"exp\":1}garbage"] {
            let tok = format!(
                "{}.{}.{}",
                b64(header().to_string().as_bytes()),
                b64(p.as_bytes()),
                b64(b"s")
            );
            assert_eq!(parse(&tok).unwrap_err(), Rejection::InvalidClaims, "{p}");
        }
    }

    #[test]
    fn rule1_claim_types() {
        for (claim, value) in [
            ("exp", json!("1800000600")),
            ("nbf", json!("0")),
            ("iat", json!(true)),
            ("exp", json!(null)),
            ("iss", json!(["x"])),
            ("sub", json!(42)),
            ("sub", json!(null)),
            ("client_id", json!({"a": 1})),
            ("token_use", json!(1)),
            ("scope", json!(["openid"])),
            ("jti", json!(7)),
            ("username", json!(1)),
            ("cognito:groups", json!("admins")),
        ] {
            let mut c = claims_for("client1", NOW + 600.0);
            c[claim] = value.clone();
            let tok = raw_token(&header(), &c, b"s");
            assert_eq!(
                parse(&tok).unwrap_err(),
                Rejection::InvalidClaims,
                "{claim}={value}"
            );
        }
    }

    #[test]
    fn rule1_duplicate_claims_are_refused() {
        let payload = format!("{{\"exp\":{},\"exp\":{}}}", NOW + 600.0, NOW - 600.0);
        let tok = format!(
            "{}.{}.{}",
            b64(header().to_string().as_bytes()),
            b64(payload.as_bytes()),
            b64(b"s")
        );
        assert_eq!(parse(&tok).unwrap_err(), Rejection::InvalidClaims);
    }

    // Rule 2 -----------------------------------------------------------------

    #[test]
    fn rule2_alg_must_be_exactly_rs256() {
        for alg in [
            json!("none"),
            json!("HS256"),
            json!("PS256"),
            json!("ES256"),
            json!("rs256"),
            json!("RS384"),
        ] {
            let h = json!({"kid": "k1", "alg": alg});
            let tok = raw_token(&h, &claims_for("client1", NOW), b"s");
            assert_eq!(parse(&tok).unwrap_err(), Rejection::UnsupportedAlg, "{alg}");
        }
        let tok = raw_token(&json!({"kid": "k1"}), &claims_for("client1", NOW), b"s");
        assert_eq!(parse(&tok).unwrap_err(), Rejection::UnsupportedAlg);
        let h = json!({"kid": "k1", "alg": "RS256", "crit": ["b64"]});
        assert_eq!(
            parse(&raw_token(&h, &claims_for("client1", NOW), b"s")).unwrap_err(),
            Rejection::UnsupportedAlg
        );
    }

    #[test]
    fn rule2_kid_is_required() {
        let tok = raw_token(&json!({"alg": "RS256"}), &claims_for("client1", NOW), b"s");
        assert_eq!(parse(&tok).unwrap_err(), Rejection::MissingKid);
    }

    #[test]
    fn rule2_a_kid_over_128_bytes_is_refused() {
        let claims = claims_for("client1", NOW);
        let ok = raw_token(
            &json!({"alg": "RS256", "kid": "k".repeat(MAX_KID_LEN)}),
            &claims,
            b"s",
        );
        assert!(parse(&ok).is_ok());
        let long = raw_token(
            &json!({"alg": "RS256", "kid": "k".repeat(MAX_KID_LEN + 1)}),
            &claims,
            b"s",
        );
        assert_eq!(parse(&long).unwrap_err(), Rejection::KidTooLong);
    }

    // Rules 5-7 --------------------------------------------------------------

    #[test]
    fn rule5_exp_is_required_and_checked() {
        assert_eq!(
            check(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Err(Rejection::MissingExp)
        );
        assert_eq!(check(|c| c["exp"] = json!(NOW)), Err(Rejection::Expired));
        assert_eq!(
            check(|c| c["exp"] = json!(NOW - 1.0)),
            Err(Rejection::Expired)
        );
        assert_eq!(check(|c| c["exp"] = json!(NOW + 1.0)), Ok(()));
    }

    #[test]
    fn rule5_leeway_applies_to_exp_and_nbf() {
        let mut e = expected();
        e.leeway = Duration::from_secs(30);
        let mut c = claims_for("client1", NOW - 10.0);
        let tok = raw_token(&header(), &c, b"s");
        assert_eq!(parse(&tok).unwrap().claims.check(&e, NOW), Ok(()));
        c["nbf"] = json!(NOW + 20.0);
        let tok = raw_token(&header(), &c, b"s");
        assert_eq!(parse(&tok).unwrap().claims.check(&e, NOW), Ok(()));
        assert_eq!(
            parse(&tok).unwrap().claims.check(&expected(), NOW),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn rule5_nbf_is_checked_when_present() {
        assert_eq!(
            check(|c| c["nbf"] = json!(NOW + 5.0)),
            Err(Rejection::NotYetValid)
        );
        assert_eq!(check(|c| c["nbf"] = json!(NOW)), Ok(()));
    }

    #[test]
    fn rule6_issuer_must_match_exactly() {
        for iss in [
            format!("{ISSUER}/"),
            ISSUER.replace("https", "http"),
            ISSUER.to_uppercase(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other".into(),
        ] {
            assert_eq!(
                check(|c| c["iss"] = json!(iss)),
                Err(Rejection::WrongIssuer),
                "{iss}"
            );
        }
        assert_eq!(
            check(|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            Err(Rejection::WrongIssuer)
        );
    }

    #[test]
    fn rule7_token_use_must_be_access() {
        assert_eq!(
            check(|c| c["token_use"] = json!("id")),
            Err(Rejection::WrongTokenUse)
        );
        assert_eq!(
            check(|c| {
                c.as_object_mut().unwrap().remove("token_use");
            }),
            Err(Rejection::WrongTokenUse)
        );
    }

    #[test]
    fn rule7_client_id_must_be_allowed() {
        assert_eq!(
            check(|c| c["client_id"] = json!("client3")),
            Err(Rejection::WrongClient)
        );
        assert_eq!(
            check(|c| {
                c.as_object_mut().unwrap().remove("client_id");
            }),
            Err(Rejection::WrongClient)
        );
        assert_eq!(check(|c| c["client_id"] = json!("client2")), Ok(()));
    }

    #[test]
    fn rule7_a_token_carrying_aud_is_refused() {
        for aud in [json!("client1"), json!(["client1"]), json!(null)] {
            assert_eq!(
                check(|c| c["aud"] = aud.clone()),
                Err(Rejection::AudiencePresent),
                "{aud}"
            );
        }
    }

    #[test]
    fn sub_is_required() {
        assert_eq!(
            check(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            Err(Rejection::MissingSub)
        );
    }
}
