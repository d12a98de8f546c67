//! The notes API's settings (`NOTES_TABLE`, `NOTES_CURSOR_KEY`, the table's region).

use std::fmt;

use cognito_verifier::ConfigError;

/// Shortest accepted `NOTES_CURSOR_KEY`: 32 characters, e.g. 16 random bytes in hex.
pub const MIN_CURSOR_KEY_LEN: usize = 32;

/// The notes API's settings; present only when `NOTES_TABLE` is set.
#[derive(Clone, PartialEq, Eq)]
pub struct NotesConfig {
    /// `NOTES_TABLE`: partition key `owner` (S), sort key `note_id` (S).
    pub table: String,
    /// `NOTES_CURSOR_KEY`: the HMAC key list cursors are signed with; `None`
    /// means a random key per process (cursors only valid on that process).
    pub cursor_key: Option<Vec<u8>>,
    /// The table's region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the
    /// pool's. Set here so the SDK never asks the instance metadata service.
    pub region: String,
}

/// The key stays out of logs and panics.
impl fmt::Debug for NotesConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotesConfig")
            .field("table", &self.table)
            .field("cursor_key", &self.cursor_key.as_ref().map(|_| "<set>"))
            .field("region", &self.region)
            .finish()
    }
}

impl NotesConfig {
    /// Reads the notes variables through `get` (empty values already count as
    /// unset); `None` when `NOTES_TABLE` is unset. `pool_region` is the fallback region.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        pool_region: &str,
    ) -> Result<Option<NotesConfig>, ConfigError> {
        let Some(table) = get("NOTES_TABLE").map(|t| t.trim().to_string()) else {
            return Ok(None);
        };
        if !valid_table_name(&table) {
            return Err(ConfigError::new(
                "NOTES_TABLE",
                "must be a DynamoDB table name: 3-255 of A-Z a-z 0-9 _ - .",
            ));
        }
        let cursor_key = match get("NOTES_CURSOR_KEY") {
            Some(k) if k.len() < MIN_CURSOR_KEY_LEN => {
                return Err(ConfigError::new(
                    "NOTES_CURSOR_KEY",
                    format!("must be at least {MIN_CURSOR_KEY_LEN} characters of secret"),
                ))
            }
            Some(k) => Some(k.into_bytes()),
            None => None,
        };
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .map(|r| r.trim().to_string())
            .unwrap_or_else(|| pool_region.to_string());
        Ok(Some(NotesConfig {
            table,
            cursor_key,
            region,
        }))
    }
}

/// DynamoDB's rule for table names.
fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read_notes(pairs: &[(&str, &str)]) -> Result<Option<NotesConfig>, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        NotesConfig::from_lookup(&|k| map.get(k).map(|v| v.to_string()), "eu-west-1")
    }

    #[test]
    fn unset_table_means_no_notes() {
        assert_eq!(read_notes(&[("NOTES_CURSOR_KEY", "x")]).unwrap(), None);
    }

    #[test]
    fn table_key_and_region() {
        let key = "k".repeat(MIN_CURSOR_KEY_LEN);
        let c = read_notes(&[("NOTES_TABLE", "planb-notes"), ("NOTES_CURSOR_KEY", &key)])
            .unwrap()
            .unwrap();
        assert_eq!(c.table, "planb-notes");
        assert_eq!(c.cursor_key.as_deref(), Some(key.as_bytes()));
        assert_eq!(c.region, "eu-west-1", "the pool's region is the fallback");
        assert!(!format!("{c:?}").contains(&key), "Debug hides the key");
        let c = read_notes(&[("NOTES_TABLE", "t.1"), ("AWS_REGION", "us-east-2")])
            .unwrap()
            .unwrap();
        assert_eq!((c.region.as_str(), c.cursor_key), ("us-east-2", None));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, var) in [
            (vec![("NOTES_TABLE", "ab")], "NOTES_TABLE"),
            (vec![("NOTES_TABLE", "a b c")], "NOTES_TABLE"),
            (
                vec![("NOTES_TABLE", "notes"), ("NOTES_CURSOR_KEY", "short")],
                "NOTES_CURSOR_KEY",
            ),
        ] {
            assert_eq!(read_notes(&pairs).unwrap_err().var, var);
        }
    }
}
