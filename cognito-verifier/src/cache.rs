//! The verified-token cache (rule 10).
//!
//! Key: the exact token text, compared in full on every lookup, so a tampered
//! token (one changed byte anywhere) never hits and no digest is needed. The
//! map's hash then only has to spread the keys: foldhash, seeded at random per
//! process, which hashes a kilobyte of token in a fraction of the time of
//! SipHash or a cryptographic digest. Only verified tokens are inserted, so no
//! request can crowd a slot with crafted keys. Value: what verification
//! produced. An entry lives until the token's `exp` at the latest (moka's
//! per-entry expiry), and `exp` is re-checked on every hit because moka's
//! expiry is lazy. Bounded in bytes (a moka weigher with the entry's
//! estimated size, the token's own bytes included) and in entries: every
//! entry weighs at least `bytes / entries`, so both bounds hold with one
//! weighted capacity.

use moka::sync::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The cache key: the token's exact text.
pub type TokenKey = Box<str>;

/// The map's hasher: foldhash, seeded at random per process.
type TokenHasher = foldhash::fast::RandomState;

/// Anything cached must say when it stops being valid and how big it is.
pub trait CacheEntry {
    /// Seconds since the epoch after which the entry must not be served.
    fn expires_at(&self) -> f64;
    /// Bytes the value owns on the heap beyond its own struct.
    fn heap_bytes(&self) -> usize;
}

/// moka's own bookkeeping per entry (node, deques, timer wheel, hash slot),
/// estimated from the resident size of a filled cache.
pub const ENTRY_OVERHEAD: usize = 512;

/// The two bounds of a cache (`TOKEN_CACHE_SIZE`, `TOKEN_CACHE_BYTES`); either 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most entries held.
    pub entries: u64,
    /// Most bytes held, by the weigher's estimate.
    pub bytes: u64,
}

/// A bounded map from token to verified result; disabled when a limit is 0.
/// A clone is the same cache (moka's handles share their store).
pub struct TokenCache<V> {
    inner: Option<Cache<TokenKey, Arc<V>, TokenHasher>>,
}

impl<V> Clone for TokenCache<V> {
    fn clone(&self) -> Self {
        TokenCache {
            inner: self.inner.clone(),
        }
    }
}

struct UntilExp;

/// Longest an entry is kept whatever its `exp` says (Cognito access tokens live at most a day).
pub const MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl<V: CacheEntry + Send + Sync + 'static> Expiry<TokenKey, Arc<V>> for UntilExp {
    fn expire_after_create(&self, _: &TokenKey, value: &Arc<V>, _: Instant) -> Option<Duration> {
        // try_from: an absurd exp (1e300) must not panic; it is capped like any other.
        let left = Duration::try_from_secs_f64((value.expires_at() - unix_now()).max(0.0));
        Some(left.unwrap_or(MAX_ENTRY_LIFETIME).min(MAX_ENTRY_LIFETIME))
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The weigher's estimate of one entry, in bytes: the token's text, the value and moka's own.
fn entry_bytes<V: CacheEntry>(key: &TokenKey, value: &V) -> u64 {
    let fixed = ENTRY_OVERHEAD + std::mem::size_of::<TokenKey>() + std::mem::size_of::<V>();
    (fixed + key.len() + value.heap_bytes()) as u64
}

impl<V: CacheEntry + Send + Sync + 'static> TokenCache<V> {
    /// A cache within `limits` (a 0 limit: no cache, every lookup misses).
    pub fn new(limits: CacheLimits) -> TokenCache<V> {
        let inner = (limits.entries > 0 && limits.bytes > 0).then(|| {
            // Each entry weighs at least this much, so at most `entries` fit in `bytes`.
            let floor = limits.bytes.div_ceil(limits.entries);
            Cache::builder()
                .max_capacity(limits.bytes)
                .weigher(move |k: &TokenKey, v: &Arc<V>| {
                    u32::try_from(entry_bytes(k, &**v).max(floor)).unwrap_or(u32::MAX)
                })
                .expire_after(UntilExp)
                .build_with_hasher(TokenHasher::default())
        });
        TokenCache { inner }
    }

    /// True unless the size was 0.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The entry for `token` if present and not past its expiry at `now`.
    pub fn get(&self, token: &str, now: f64) -> Option<Arc<V>> {
        let cache = self.inner.as_ref()?;
        let hit = cache.get(token)?;
        if now >= hit.expires_at() {
            cache.invalidate(token);
            return None;
        }
        Some(hit)
    }

    /// Remembers a verified result for `token`.
    pub fn insert(&self, token: &str, value: Arc<V>) {
        if let Some(cache) = &self.inner {
            cache.insert(token.into(), value);
        }
    }

    /// Entries currently held (approximate, for metrics).
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.entry_count())
    }

    /// True when nothing is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, by the weigher's estimate (approximate).
    #[cfg(test)]
    pub fn weighted_bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V(f64);
    impl CacheEntry for V {
        fn expires_at(&self) -> f64 {
            self.0
        }
        fn heap_bytes(&self) -> usize {
            0
        }
    }

    /// A value owning `.1` as heap bytes, like a verified token with a large body.
    struct Big(f64, Vec<u8>);
    impl CacheEntry for Big {
        fn expires_at(&self) -> f64 {
            self.0
        }
        fn heap_bytes(&self) -> usize {
            self.1.len()
        }
    }

    fn sized(entries: u64) -> CacheLimits {
        CacheLimits {
            entries,
            bytes: 32 << 20,
        }
    }

    #[test]
    fn rule10_hit_until_exp_then_miss() {
        let c = TokenCache::new(sized(10));
        let now = unix_now();
        c.insert("tok", Arc::new(V(now + 60.0)));
        assert!(c.get("tok", now).is_some());
        // exp is re-checked on every hit, whatever moka still holds.
        assert!(c.get("tok", now + 60.0).is_none());
        assert!(c.get("tok", now).is_none(), "an expired hit is evicted");
    }

    #[test]
    fn rule10_entries_expire_in_moka_at_exp() {
        let c = TokenCache::new(sized(10));
        c.insert("tok", Arc::new(V(unix_now() + 0.2)));
        std::thread::sleep(Duration::from_millis(300));
        // Pass a `now` in the past so only moka's own expiry can make this miss.
        assert!(c.get("tok", 0.0).is_none());
    }

    #[test]
    fn rule10_a_changed_token_never_hits() {
        let c = TokenCache::new(sized(10));
        c.insert("aaa.bbb.ccc", Arc::new(V(unix_now() + 60.0)));
        assert!(c.get("aaa.bbb.ccd", 0.0).is_none());
        assert!(c.get("aaa.bbb.cc", 0.0).is_none());
        assert!(c.get("aaa.bbb.ccc.", 0.0).is_none());
        assert!(c.get("aaa.bbb.ccc", 0.0).is_some());
    }

    #[test]
    fn an_absurd_exp_is_capped_not_a_panic() {
        let c = TokenCache::new(sized(10));
        c.insert("tok", Arc::new(V(1e300)));
        assert!(c.get("tok", unix_now()).is_some());
    }

    #[test]
    fn size_zero_disables_the_cache() {
        let c = TokenCache::new(sized(0));
        assert!(!c.enabled());
        let no_bytes = TokenCache::<V>::new(CacheLimits {
            entries: 10,
            bytes: 0,
        });
        assert!(!no_bytes.enabled());
        c.insert("tok", Arc::new(V(unix_now() + 60.0)));
        assert!(c.get("tok", 0.0).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = TokenCache::new(sized(50));
        for i in 0..500 {
            c.insert(&i.to_string(), Arc::new(V(unix_now() + 60.0)));
        }
        c.inner.as_ref().unwrap().run_pending_tasks();
        assert!(c.len() <= 50, "{}", c.len());
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_held_by_value_or_token() {
        let budget = 1 << 20;
        // 12 KiB in each value, then in each token: in 1 MiB at most 85 of the
        // 500 either way, whatever the entry bound says.
        for in_token in [false, true] {
            let c = TokenCache::new(CacheLimits {
                entries: 100_000,
                bytes: budget,
            });
            for i in 0..500 {
                let (token, body) = if in_token {
                    (format!("{i:012}").repeat(1024), Vec::new())
                } else {
                    (i.to_string(), vec![0; 12 * 1024])
                };
                c.insert(&token, Arc::new(Big(unix_now() + 60.0, body)));
            }
            c.inner.as_ref().unwrap().run_pending_tasks();
            assert!(c.weighted_bytes() <= budget, "{}", c.weighted_bytes());
            assert!(c.len() <= 85, "in token: {in_token}: {}", c.len());
            assert!(!c.is_empty());
        }
    }
}
