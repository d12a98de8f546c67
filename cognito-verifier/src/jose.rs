//! The compact JWS helpers both token kinds share: the three-part split,
//! base64url (strict for Cognito, padding-tolerant for ALB) and JSON objects
//! whose members keep their types (as aws-jwt-verify's `safe-json-parse.ts`).

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::de::{Error, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// base64url that accepts parts with or without `=` padding, as ALB sends them.
const PADDED_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The three parts of a compact JWS, as received.
#[derive(Debug, Clone, Copy)]
pub struct Compact<'t> {
    /// The header part.
    pub header: &'t str,
    /// The payload part.
    pub payload: &'t str,
    /// The signature part.
    pub signature: &'t str,
    /// `header.payload` exactly as received: what the signature covers.
    pub signing_input: &'t str,
}

/// Exactly three non-empty dot-separated parts.
pub fn split(token: &str) -> Option<Compact<'_>> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            Some(Compact {
                header: h,
                payload: p,
                signature: s,
                signing_input: &token[..h.len() + 1 + p.len()],
            })
        }
        _ => None,
    }
}

/// Strict base64url: no padding, no stray characters, canonical trailing bits.
pub fn decode_strict(part: &str) -> Option<Vec<u8>> {
    base64_simd::URL_SAFE_NO_PAD.decode_to_vec(part).ok()
}

/// The most bytes strict base64url of `part` can decode to: what to make room for.
pub fn decoded_len_max(part: &str) -> usize {
    base64_simd::URL_SAFE_NO_PAD.estimated_decoded_length(part.len())
}

/// Strict base64url of `part` decoded into the front of `out` (at least
/// [`decoded_len_max`] long): the decoded bytes, or `None` when not base64url.
pub fn decode_strict_into<'o>(part: &str, out: &'o mut [u8]) -> Option<&'o [u8]> {
    let out = base64_simd::Out::from_slice(out);
    let decoded = base64_simd::URL_SAFE_NO_PAD
        .decode(part.as_bytes(), out)
        .ok()?;
    Some(decoded)
}

/// base64url with or without `=` padding.
pub fn decode_padded(part: &str) -> Option<Vec<u8>> {
    PADDED_URL_SAFE.decode(part).ok()
}

/// Deserializes `bytes` only if it is UTF-8 (RFC 7519 7.2, RFC 8259 8.1)
/// and a JSON object: serde's derived structs would otherwise also accept a
/// JSON array, field by position. The whole text is checked as UTF-8 once,
/// rather than string by string as JSON from bytes would, and only where a
/// string is read: invalid UTF-8 in a member we skip is refused too.
pub fn json_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text
        .trim_start_matches(|c: char| c.is_ascii_whitespace())
        .starts_with('{')
    {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// A member that, when present, must have type `T` (`null` is a wrong type, not absence).
pub fn non_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A JSON string member, borrowed from the document unless it has escapes:
/// a claim costs no allocation of its own. Any other JSON type is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

/// True when the member is present, whatever its value.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_wants_three_non_empty_parts() {
        let c = split("aa.bb.cc").unwrap();
        assert_eq!(
            (c.header, c.payload, c.signature, c.signing_input),
            ("aa", "bb", "cc", "aa.bb")
        );
        for bad in ["", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b."] {
            assert!(split(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn strict_and_padded_base64url() {
        assert_eq!(decode_strict("YQ"), Some(b"a".to_vec()));
        assert_eq!(decode_strict("YQ=="), None);
        assert_eq!(decode_strict("Y+"), None);
        assert_eq!(decode_strict("YR"), None, "non-canonical trailing bits");
        assert_eq!(decode_strict("Y"), None, "a lone sixth of a byte");
        // Long enough for the vector loop: every stray character is refused there too.
        let long = "QUJD".repeat(40);
        assert_eq!(decode_strict(&long), Some(b"ABC".repeat(40)));
        for stray in ['+', '/', '=', '.', ' ', '\u{e9}'] {
            for at in [0, 17, 63, 100, 159] {
                let mut bad: Vec<char> = long.chars().collect();
                bad[at] = stray;
                let bad: String = bad.into_iter().collect();
                assert_eq!(decode_strict(&bad), None, "{stray:?} at {at}");
                let mut out = vec![0; decoded_len_max(&bad)];
                assert_eq!(
                    decode_strict_into(&bad, &mut out),
                    None,
                    "{stray:?} at {at}"
                );
            }
        }
        let mut out = vec![0; decoded_len_max(&long)];
        assert_eq!(
            decode_strict_into(&long, &mut out),
            Some(&b"ABC".repeat(40)[..])
        );
        assert_eq!(decode_padded("YQ=="), Some(b"a".to_vec()));
        assert_eq!(decode_padded("YQ"), Some(b"a".to_vec()));
    }

    #[test]
    fn only_json_objects() {
        #[derive(Deserialize)]
        struct A {
            a: u8,
        }
        assert_eq!(json_object::<A>(b" {\"a\":1}").map(|x| x.a), Some(1));
        assert!(json_object::<A>(b"[1]").is_none());
        assert!(json_object::<A>(b"{\"a\":1}x").is_none());
        // Not UTF-8, even in a member that is skipped.
        assert!(json_object::<A>(b"{\"a\":1,\"b\":\"\xff\"}").is_none());
        assert!(json_object::<A>(b"{\"a\":1,\"b\":\"\xc3\xa9\"}").is_some());
    }
}
