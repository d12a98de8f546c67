//! What a notes request may carry: the id, the list query, `If-Match`, the body.
//! Everything is checked before any DynamoDB call.

use hyper::header::{HeaderMap, IF_MATCH};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;

use super::error::NotesError;

/// Longest note id.
pub const MAX_ID_LEN: usize = 64;
/// Longest note text, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Page size bounds and default for `GET /api/notes`.
pub const MAX_LIMIT: u16 = 100;
/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: u16 = 20;

/// 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A checked note id.
pub fn note_id(raw: &str) -> Result<&str, NotesError> {
    if valid_id(raw) {
        Ok(raw)
    } else {
        Err(NotesError::InvalidId)
    }
}

/// `GET /api/notes`' query: `limit` and `cursor` (still sealed).
#[derive(Debug, PartialEq, Eq)]
pub struct ListQuery<'q> {
    /// Page size, 1-100.
    pub limit: u16,
    /// The cursor from the previous page's `next`.
    pub cursor: Option<&'q str>,
}

/// Parses `limit=N&cursor=C`; other parameters are ignored, a repeated one is an error.
pub fn list_query(query: Option<&str>) -> Result<ListQuery<'_>, NotesError> {
    let mut limit = None;
    let mut cursor = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "limit" if limit.is_none() => limit = Some(value),
            "limit" => return Err(NotesError::InvalidLimit),
            "cursor" if cursor.is_none() => cursor = Some(value),
            "cursor" => return Err(NotesError::InvalidCursor),
            _ => {}
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or(NotesError::InvalidLimit)?,
    };
    Ok(ListQuery { limit, cursor })
}

/// The precondition `If-Match` sets on a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No `If-Match`: create or replace.
    Any,
    /// `If-Match: *`: the note must exist.
    Exists,
    /// `If-Match: N` or `"N"`: the note must be at version N.
    Version(u64),
}

/// One `If-Match` with `*` or one version (bare or quoted, as an ETag); else 400.
pub fn expect(headers: &HeaderMap) -> Result<Expect, NotesError> {
    let mut values = headers.get_all(IF_MATCH).iter();
    let Some(value) = values.next() else {
        return Ok(Expect::Any);
    };
    if values.next().is_some() {
        return Err(NotesError::InvalidIfMatch);
    }
    let text = value
        .to_str()
        .map_err(|_| NotesError::InvalidIfMatch)?
        .trim();
    if text == "*" {
        return Ok(Expect::Exists);
    }
    let bare = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotesError::InvalidIfMatch);
    }
    bare.parse()
        .map(Expect::Version)
        .map_err(|_| NotesError::InvalidIfMatch)
}

/// The PUT body: exactly `{"text": "..."}`, taken with `cognito_verifier::JsonBody`.
#[derive(Debug, utoipa::ToSchema)]
pub struct NoteInput {
    /// The note's text, at most 4096 bytes.
    pub text: String,
}

/// An object only, with `text` once and nothing else: serde's derive would
/// also take `["..."]` and ignore unknown members.
impl<'de> Deserialize<'de> for NoteInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NoteInput, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = NoteInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object {\"text\": string}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoteInput, A::Error> {
                let mut text = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "text" if text.is_none() => text = Some(map.next_value::<String>()?),
                        "text" => return Err(de::Error::duplicate_field("text")),
                        other => return Err(de::Error::unknown_field(other, &["text"])),
                    }
                }
                let text = text.ok_or_else(|| de::Error::missing_field("text"))?;
                Ok(NoteInput { text })
            }
        }
        d.deserialize_map(Object)
    }
}

/// The note text of a PUT: 413 over 4096 bytes.
pub fn note_text(input: NoteInput) -> Result<String, NotesError> {
    if input.text.len() > MAX_TEXT_BYTES {
        return Err(NotesError::TooLarge);
    }
    Ok(input.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn ids() {
        for ok in ["a", "A-z_09", &"x".repeat(64)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", &"x".repeat(65), "a/b", "a.b", "é", "a b", "%41", "a\0"] {
            assert_eq!(note_id(bad), Err(NotesError::InvalidId), "{bad:?}");
        }
    }

    #[test]
    fn list_queries() {
        assert_eq!(
            list_query(None).unwrap(),
            ListQuery {
                limit: 20,
                cursor: None
            }
        );
        let q = list_query(Some("limit=100&cursor=abc&x=1")).unwrap();
        assert_eq!((q.limit, q.cursor), (100, Some("abc")));
        assert_eq!(list_query(Some("limit=1")).unwrap().limit, 1);
        for bad in [
            "limit=0",
            "limit=101",
            "limit=",
            "limit=x",
            "limit=-1",
            "limit=1&limit=2",
        ] {
            assert_eq!(
                list_query(Some(bad)),
                Err(NotesError::InvalidLimit),
                "{bad}"
            );
        }
        assert_eq!(
            list_query(Some("cursor=a&cursor=b")),
            Err(NotesError::InvalidCursor)
        );
    }

    #[test]
    fn if_match() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(IF_MATCH, HeaderValue::from_static(v));
            expect(&h)
        };
        assert_eq!(expect(&HeaderMap::new()), Ok(Expect::Any));
        assert_eq!(with("*"), Ok(Expect::Exists));
        assert_eq!(with("3"), Ok(Expect::Version(3)));
        assert_eq!(with("\"12\""), Ok(Expect::Version(12)));
        for bad in [
            "",
            "W/\"1\"",
            "\"1\", \"2\"",
            "x",
            "+1",
            "99999999999999999999999",
        ] {
            assert_eq!(with(bad), Err(NotesError::InvalidIfMatch), "{bad}");
        }
        let mut h = HeaderMap::new();
        h.append(IF_MATCH, HeaderValue::from_static("1"));
        h.append(IF_MATCH, HeaderValue::from_static("1"));
        assert_eq!(expect(&h), Err(NotesError::InvalidIfMatch));
    }

    fn input(body: &[u8]) -> Result<NoteInput, serde_json::Error> {
        serde_json::from_slice(body)
    }

    #[test]
    fn bodies() {
        assert_eq!(input(br#"{"text":"hi"}"#).unwrap().text, "hi");
        assert_eq!(input(br#"{"text":""}"#).unwrap().text, "");
        let max = "é".repeat(MAX_TEXT_BYTES / 2);
        assert_eq!(
            note_text(NoteInput { text: max }).unwrap().len(),
            MAX_TEXT_BYTES
        );
        let over = "é".repeat(MAX_TEXT_BYTES / 2) + "x";
        assert_eq!(
            note_text(NoteInput { text: over }),
            Err(NotesError::TooLarge)
        );
        // The longest spelling of a 4096-byte text fits in the body limit.
        let escaped = format!(r#"{{"text":"{}"}}"#, "\\u0001".repeat(MAX_TEXT_BYTES));
        assert!(escaped.len() <= cognito_verifier::DEFAULT_BODY_LIMIT);
        assert_eq!(
            input(escaped.as_bytes()).unwrap().text.len(),
            MAX_TEXT_BYTES
        );
        for bad in [
            &b"{}"[..],
            br#"{"text":1}"#,
            br#"{"text":"a","x":1}"#,
            br#"{"text":"a","text":"b"}"#,
            br#"["a"]"#,
        ] {
            assert!(input(bad).is_err(), "{bad:?}");
        }
    }
}
