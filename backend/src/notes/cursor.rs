//! List cursors: opaque to clients, tamper-evident, bound to their owner.
//!
//! A cursor is `base64url(tag || last_note_id)` where `tag` is
//! HMAC-SHA-256 over the owner's `sub` and that id. The next page starts
//! after the id, always inside the caller's own partition: a forged cursor, or
//! one minted for another user, fails the tag and is refused before any read.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::validate::valid_id;

/// What distinguishes these MACs from any other use of the same key.
const CONTEXT: &[u8] = b"planb-notes-cursor-v1";
const TAG_LEN: usize = 32;

/// The HMAC key cursors are signed with.
pub struct CursorKey(hmac::Key);

impl CursorKey {
    /// A key from `NOTES_CURSOR_KEY`'s bytes.
    pub fn new(secret: &[u8]) -> CursorKey {
        CursorKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// A random key for this process only.
    pub fn random() -> Result<CursorKey, String> {
        let mut secret = [0u8; TAG_LEN];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| "no system randomness for the cursor key")?;
        Ok(CursorKey::new(&secret))
    }

    /// The cursor that continues `owner`'s listing after `last_id`.
    pub fn seal(&self, owner: &str, last_id: &str) -> String {
        let tag = hmac::sign(&self.0, &message(owner, last_id));
        let mut raw = Vec::with_capacity(TAG_LEN + last_id.len());
        raw.extend_from_slice(tag.as_ref());
        raw.extend_from_slice(last_id.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The id a cursor continues after, if `owner`'s key signed it; `None` for
    /// anything else (bad encoding, bad tag, another owner's cursor).
    pub fn open(&self, owner: &str, cursor: &str) -> Option<String> {
        // The longest cursor holds a tag and a 64-byte id.
        if cursor.len() > (TAG_LEN + 64).div_ceil(3) * 4 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if raw.len() <= TAG_LEN {
            return None;
        }
        let (tag, id) = raw.split_at(TAG_LEN);
        let id = std::str::from_utf8(id).ok().filter(|id| valid_id(id))?;
        hmac::verify(&self.0, &message(owner, id), tag).ok()?;
        Some(id.to_string())
    }
}

/// Length-prefixed fields: no two (owner, id) pairs give the same message.
fn message(owner: &str, id: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 16 + owner.len() + id.len());
    m.extend_from_slice(CONTEXT);
    for field in [owner, id] {
        m.extend_from_slice(&(field.len() as u64).to_be_bytes());
        m.extend_from_slice(field.as_bytes());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_for_its_owner_only() {
        let key = CursorKey::new(b"0123456789abcdef0123456789abcdef");
        let c = key.seal("alice-sub", "note-7");
        assert_eq!(key.open("alice-sub", &c).as_deref(), Some("note-7"));
        assert_eq!(key.open("bob-sub", &c), None, "another user's cursor");
        let other = CursorKey::new(b"another key, another process....");
        assert_eq!(other.open("alice-sub", &c), None, "another key");
        assert!(!c.contains("note-7"), "opaque: {c}");
    }

    #[test]
    fn tampering_is_refused() {
        let key = CursorKey::random().unwrap();
        let c = key.seal("alice", "b");
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        *raw.last_mut().unwrap() = b'c'; // the id changed, the tag kept
        assert_eq!(key.open("alice", &URL_SAFE_NO_PAD.encode(&raw)), None);
        raw[0] ^= 1;
        assert_eq!(key.open("alice", &URL_SAFE_NO_PAD.encode(&raw)), None);
        for junk in ["", "!!!", "YQ", &"A".repeat(500), &c[..c.len() - 2]] {
            assert_eq!(key.open("alice", junk), None, "{junk}");
        }
    }

    #[test]
    fn the_owner_id_boundary_is_unambiguous() {
        // Without length prefixes, ("ab", "c") and ("a", "bc") would sign the same bytes.
        let key = CursorKey::random().unwrap();
        let raw = URL_SAFE_NO_PAD.decode(key.seal("ab", "c")).unwrap();
        let mut forged = raw[..TAG_LEN].to_vec();
        forged.extend_from_slice(b"bc");
        assert_eq!(key.open("a", &URL_SAFE_NO_PAD.encode(forged)), None);
    }
}
