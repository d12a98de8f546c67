//! The keys a key source's fetches brought, by fetch target, weighed in
//! bytes, each target's with when it is due to be fetched again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The most memory one source's kept keys take, each weighed as its `kid`,
/// [`KeyEntry::bytes`] and [`KEPT_ENTRY_OVERHEAD`]: about 45 parsed RSA-2048
/// keys or 75 ALB keys. Past it the oldest target goes; a set larger on its own is cut.
pub const MAX_KEPT_BYTES: usize = 64 * 1024;
/// The maps' own bookkeeping per entry, counted on top of the `kid` and key.
const KEPT_ENTRY_OVERHEAD: usize = 128;

/// One `kid` a fetch brought: its key, or `None` when the source lists it
/// with no usable key (refused without a fetch).
#[derive(Debug)]
pub(crate) struct KeyEntry<K> {
    pub(crate) kid: String,
    pub(crate) key: Option<Arc<K>>,
    /// The key's own heap bytes.
    pub(crate) bytes: usize,
}

/// What one fetch of a target brought.
struct KeptSet<K> {
    keys: HashMap<String, Option<Arc<K>>>,
    weight: usize,
    fetched: Instant,
    revalidate_at: Instant,
}

/// The kept keys of one source.
pub(crate) struct KeptKeys<K> {
    by_target: RwLock<HashMap<String, KeptSet<K>>>,
}

impl<K> Default for KeptKeys<K> {
    fn default() -> Self {
        KeptKeys {
            by_target: RwLock::new(HashMap::new()),
        }
    }
}

impl<K> KeptKeys<K> {
    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, KeptSet<K>>> {
        self.by_target.write().unwrap_or_else(|e| e.into_inner())
    }

    /// What `target`'s fetch kept for `kid` (its key, or `None` for a listed
    /// unusable one), and whether it is due to be fetched again.
    pub(crate) fn get(&self, target: &str, kid: &str) -> Option<(Option<Arc<K>>, bool)> {
        let sets = self.by_target.read().unwrap_or_else(|e| e.into_inner());
        let set = sets.get(target)?;
        let key = set.keys.get(kid)?.clone();
        Some((key, Instant::now() >= set.revalidate_at))
    }

    /// True when nothing is kept.
    pub(crate) fn is_empty(&self) -> bool {
        let sets = self.by_target.read().unwrap_or_else(|e| e.into_inner());
        sets.is_empty()
    }

    /// `target`'s new answer replaces its old one (a `kid` no longer listed
    /// goes), due again after `max_age`; the first entry for a `kid` wins.
    pub(crate) fn replace(&self, target: &str, entries: Vec<KeyEntry<K>>, max_age: Duration) {
        let mut keys = HashMap::new();
        let mut weight = target.len() + KEPT_ENTRY_OVERHEAD;
        for e in entries {
            let w = e.kid.len() + e.bytes + KEPT_ENTRY_OVERHEAD;
            if weight + w > MAX_KEPT_BYTES {
                tracing::warn!(
                    kept = keys.len(),
                    "key set over the memory bound; the rest left out"
                );
                break;
            }
            weight += w;
            keys.entry(e.kid).or_insert(e.key);
        }
        let mut sets = self.write();
        sets.remove(target);
        while sets.values().map(|s| s.weight).sum::<usize>() + weight > MAX_KEPT_BYTES {
            let oldest = sets.iter().min_by_key(|(_, s)| s.fetched);
            let Some(oldest) = oldest.map(|(t, _)| t.clone()) else {
                break;
            };
            sets.remove(&oldest);
        }
        let fetched = Instant::now();
        let set = KeptSet {
            keys,
            weight,
            fetched,
            revalidate_at: fetched + max_age,
        };
        sets.insert(target.to_string(), set);
    }

    /// Drops what `target`'s fetch kept.
    pub(crate) fn remove(&self, target: &str) {
        self.write().remove(target);
    }

    /// `target` is fetched again no sooner than `at`.
    pub(crate) fn postpone(&self, target: &str, at: Instant) {
        if let Some(set) = self.write().get_mut(target) {
            set.revalidate_at = at;
        }
    }

    /// The weighed bytes held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.write().values().map(|s| s.weight).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kid: &str, bytes: usize) -> KeyEntry<()> {
        KeyEntry {
            kid: kid.into(),
            key: Some(Arc::new(())),
            bytes,
        }
    }

    #[test]
    fn a_fetch_replaces_what_its_target_kept_and_nothing_else() {
        let kept = KeptKeys::default();
        let hour = Duration::from_secs(3600);
        kept.replace("a", vec![entry("a", 10)], hour);
        kept.replace("s", vec![entry("s1", 10), entry("s2", 10)], hour);
        kept.replace("s", vec![entry("s2", 10)], hour);
        assert!(kept.get("a", "a").is_some());
        assert!(kept.get("s", "s1").is_none(), "no longer listed: gone");
        assert_eq!(kept.get("s", "s2").map(|(_, due)| due), Some(false));
        kept.remove("a");
        assert!(kept.get("a", "a").is_none());
        assert_eq!(kept.bytes(), 1 + 2 + 10 + 2 * KEPT_ENTRY_OVERHEAD);
    }

    #[test]
    fn kept_keys_are_bounded_in_bytes_the_oldest_going_first() {
        let kept = KeptKeys::default();
        let hour = Duration::from_secs(3600);
        for i in 0..1000 {
            let kid = format!("{i:04}");
            kept.replace(&kid, vec![entry(&kid, 1000)], hour);
        }
        assert!(kept.bytes() <= MAX_KEPT_BYTES, "{}", kept.bytes());
        assert!(kept.get("0999", "0999").is_some() && kept.get("0000", "0000").is_none());
        // A set larger than the bound on its own is cut.
        let set = (0..1000).map(|i| entry(&format!("s{i}"), 1000)).collect();
        kept.replace("", set, hour);
        assert!(kept.bytes() <= MAX_KEPT_BYTES, "{}", kept.bytes());
        assert!(kept.get("", "s0").is_some() && kept.get("", "s999").is_none());
    }

    #[test]
    fn a_postponed_set_is_due_again_later() {
        let kept = KeptKeys::default();
        kept.replace("", vec![entry("a", 1)], Duration::ZERO);
        assert_eq!(kept.get("", "a").map(|(_, due)| due), Some(true));
        kept.postpone("", Instant::now() + Duration::from_secs(60));
        assert_eq!(kept.get("", "a").map(|(_, due)| due), Some(false));
    }
}
