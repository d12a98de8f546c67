//! The keys a key source's fetches brought, weighed in bytes, each with
//! when it is due to be fetched again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// The most memory one source's kept keys take, weighed as [`KeyEntry::bytes`]
/// plus the `kid` and [`KEPT_ENTRY_OVERHEAD`]: about 150 RSA-2048 keys or
/// 190 ALB keys; past it the oldest of another target goes first.
pub const MAX_KEPT_BYTES: usize = 64 * 1024;
/// The map's own bookkeeping per entry, counted on top of the `kid` and key.
const KEPT_ENTRY_OVERHEAD: usize = 128;

/// One `kid` a fetch brought: its key, or `None` when the source lists it
/// with no usable key (refused without a fetch).
pub(crate) struct KeyEntry<K> {
    pub(crate) kid: String,
    pub(crate) key: Option<Arc<K>>,
    /// The key's own heap bytes.
    pub(crate) bytes: usize,
}

struct KeptKey<K> {
    key: Option<Arc<K>>,
    fetched: Instant,
    revalidate_at: Instant,
    weight: usize,
}

struct Held<K> {
    by_kid: HashMap<String, KeptKey<K>>,
    bytes: usize,
}

impl<K> Held<K> {
    fn remove(&mut self, kid: &str) {
        if let Some(k) = self.by_kid.remove(kid) {
            self.bytes -= k.weight;
        }
    }

    /// Drops the oldest kept key whose `kid` `keep` does not protect; false when none is left.
    fn evict_oldest(&mut self, keep: &impl Fn(&str) -> bool) -> bool {
        let oldest = self
            .by_kid
            .iter()
            .filter(|(kid, _)| !keep(kid))
            .min_by_key(|(_, k)| k.fetched)
            .map(|(kid, _)| kid.clone());
        oldest.map(|kid| self.remove(&kid)).is_some()
    }
}

/// The keys of one source by `kid`.
pub(crate) struct KeptKeys<K> {
    held: RwLock<Held<K>>,
}

impl<K> Default for KeptKeys<K> {
    fn default() -> Self {
        KeptKeys {
            held: RwLock::new(Held {
                by_kid: HashMap::new(),
                bytes: 0,
            }),
        }
    }
}

impl<K> KeptKeys<K> {
    /// What is kept for `kid` (its key, or `None` for a listed unusable one),
    /// and whether it is due to be fetched again.
    pub(crate) fn get(&self, kid: &str) -> Option<(Option<Arc<K>>, bool)> {
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        let k = held.by_kid.get(kid)?;
        Some((k.key.clone(), Instant::now() >= k.revalidate_at))
    }

    /// True when nothing is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_kid
            .is_empty()
    }

    /// A fetch's answer for the `kid`s `answered` selects: they are replaced
    /// by `entries` (a `kid` no longer listed goes), each due again after
    /// `max_age`. Entries past the memory bound are left out, and logged.
    pub(crate) fn replace(
        &self,
        answered: impl Fn(&str) -> bool,
        entries: Vec<KeyEntry<K>>,
        max_age: Duration,
    ) {
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        held.by_kid.retain(|kid, _| !answered(kid));
        held.bytes = held.by_kid.values().map(|k| k.weight).sum();
        let fetched = Instant::now();
        let total = entries.len();
        for (i, e) in entries.into_iter().enumerate() {
            let weight = e.kid.len() + e.bytes + KEPT_ENTRY_OVERHEAD;
            while held.bytes + weight > MAX_KEPT_BYTES {
                if !held.evict_oldest(&answered) {
                    tracing::warn!(
                        kept = i,
                        listed = total,
                        "key set over the memory bound; the rest left out"
                    );
                    return;
                }
            }
            held.remove(&e.kid);
            held.bytes += weight;
            let kept = KeptKey {
                key: e.key,
                fetched,
                revalidate_at: fetched + max_age,
                weight,
            };
            held.by_kid.insert(e.kid, kept);
        }
    }

    /// Drops the keys of the `kid`s `answered` selects.
    pub(crate) fn remove(&self, answered: impl Fn(&str) -> bool) {
        self.replace(answered, Vec::new(), Duration::ZERO);
    }

    /// The keys of the `kid`s `answered` selects are fetched again no sooner than `at`.
    pub(crate) fn postpone(&self, answered: impl Fn(&str) -> bool, at: Instant) {
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        for (_, k) in held.by_kid.iter_mut().filter(|(kid, _)| answered(kid)) {
            k.revalidate_at = at;
        }
    }

    /// The weighed bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.held.read().unwrap_or_else(|e| e.into_inner()).bytes
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
    fn a_fetch_replaces_what_its_target_answers_for_and_nothing_else() {
        let kept = KeptKeys::default();
        let hour = Duration::from_secs(3600);
        kept.replace(|k| k == "a", vec![entry("a", 10)], hour);
        kept.replace(
            |k| k.starts_with('s'),
            vec![entry("s1", 10), entry("s2", 10)],
            hour,
        );
        kept.replace(|k| k.starts_with('s'), vec![entry("s2", 10)], hour);
        assert!(kept.get("a").is_some());
        assert!(kept.get("s1").is_none(), "no longer listed: gone");
        assert_eq!(kept.get("s2").map(|(_, due)| due), Some(false));
        kept.remove(|k| k == "a");
        assert!(kept.get("a").is_none());
        assert_eq!(kept.bytes(), 2 + 10 + KEPT_ENTRY_OVERHEAD);
    }

    #[test]
    fn kept_keys_are_bounded_in_bytes_the_oldest_going_first() {
        let kept = KeptKeys::default();
        let hour = Duration::from_secs(3600);
        for i in 0..1000 {
            let kid = format!("{i:04}");
            kept.replace(|k| k == kid, vec![entry(&kid, 1000)], hour);
        }
        assert!(kept.bytes() <= MAX_KEPT_BYTES, "{}", kept.bytes());
        assert!(kept.get("0999").is_some() && kept.get("0000").is_none());
        // One target's own set is cut at the bound, not evicted by itself.
        let set = (0..1000).map(|i| entry(&format!("s{i}"), 1000)).collect();
        kept.replace(|_| true, set, hour);
        assert!(kept.bytes() <= MAX_KEPT_BYTES, "{}", kept.bytes());
        assert!(kept.get("s0").is_some() && kept.get("s999").is_none());
    }

    #[test]
    fn a_postponed_key_is_due_again_later() {
        let kept = KeptKeys::default();
        kept.replace(|_| true, vec![entry("a", 1)], Duration::ZERO);
        assert_eq!(kept.get("a").map(|(_, due)| due), Some(true));
        kept.postpone(|_| true, Instant::now() + Duration::from_secs(60));
        assert_eq!(kept.get("a").map(|(_, due)| due), Some(false));
    }
}
