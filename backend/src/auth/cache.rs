//! The verified-token cache (rule 10).
//!
//! Key: the SHA-256 of the exact token text, so a tampered token (one changed
//! byte anywhere) never hits, and memory per entry does not grow with token
//! size. Value: what verification produced. An entry lives until the token's
//! `exp` at the latest (moka's per-entry expiry), and `exp` is re-checked on
//! every hit because moka's expiry is lazy. Bounded by entry count.

use aws_lc_rs::digest::{digest, SHA256};
use moka::sync::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The cache key: SHA-256 of the token.
pub type TokenKey = [u8; 32];

/// Anything cached must say when it stops being valid.
pub trait Expires {
    /// Seconds since the epoch after which the entry must not be served.
    fn expires_at(&self) -> f64;
}

/// A bounded map from token hash to verified result; disabled when the size is 0.
pub struct TokenCache<V> {
    inner: Option<Cache<TokenKey, Arc<V>>>,
}

struct UntilExp;

/// Longest an entry is kept whatever its `exp` says (Cognito access tokens live at most a day).
pub const MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl<V: Expires + Send + Sync + 'static> Expiry<TokenKey, Arc<V>> for UntilExp {
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

/// The cache key for `token`.
pub fn key_of(token: &str) -> TokenKey {
    let d = digest(&SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

impl<V: Expires + Send + Sync + 'static> TokenCache<V> {
    /// A cache of at most `size` entries (`0`: no cache, every lookup misses).
    pub fn new(size: u64) -> TokenCache<V> {
        let inner = (size > 0).then(|| {
            Cache::builder()
                .max_capacity(size)
                .expire_after(UntilExp)
                .build()
        });
        TokenCache { inner }
    }

    /// True unless the size was 0.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The entry for `key` if present and not past its expiry at `now`.
    pub fn get(&self, key: &TokenKey, now: f64) -> Option<Arc<V>> {
        let cache = self.inner.as_ref()?;
        let hit = cache.get(key)?;
        if now >= hit.expires_at() {
            cache.invalidate(key);
            return None;
        }
        Some(hit)
    }

    /// Remembers a verified result.
    pub fn insert(&self, key: TokenKey, value: Arc<V>) {
        if let Some(cache) = &self.inner {
            cache.insert(key, value);
        }
    }

    /// Entries currently held (approximate, for metrics).
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.entry_count())
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V(f64);
    impl Expires for V {
        fn expires_at(&self) -> f64 {
            self.0
        }
    }

    #[test]
    fn rule10_hit_until_exp_then_miss() {
        let c = TokenCache::new(10);
        let now = unix_now();
        c.insert(key_of("tok"), Arc::new(V(now + 60.0)));
        assert!(c.get(&key_of("tok"), now).is_some());
        // exp is re-checked on every hit, whatever moka still holds.
        assert!(c.get(&key_of("tok"), now + 60.0).is_none());
        assert!(
            c.get(&key_of("tok"), now).is_none(),
            "an expired hit is evicted"
        );
    }

    #[test]
    fn rule10_entries_expire_in_moka_at_exp() {
        let c = TokenCache::new(10);
        c.insert(key_of("tok"), Arc::new(V(unix_now() + 0.2)));
        std::thread::sleep(Duration::from_millis(300));
        // Pass a `now` in the past so only moka's own expiry can make this miss.
        assert!(c.get(&key_of("tok"), 0.0).is_none());
    }

    #[test]
    fn rule10_a_changed_token_never_hits() {
        let c = TokenCache::new(10);
        c.insert(key_of("aaa.bbb.ccc"), Arc::new(V(unix_now() + 60.0)));
        assert!(c.get(&key_of("aaa.bbb.ccd"), 0.0).is_none());
        assert!(c.get(&key_of("aaa.bbb.cc"), 0.0).is_none());
    }

    #[test]
    fn an_absurd_exp_is_capped_not_a_panic() {
        let c = TokenCache::new(10);
        c.insert(key_of("tok"), Arc::new(V(1e300)));
        assert!(c.get(&key_of("tok"), unix_now()).is_some());
    }

    #[test]
    fn size_zero_disables_the_cache() {
        let c = TokenCache::new(0);
        assert!(!c.enabled());
        c.insert(key_of("tok"), Arc::new(V(unix_now() + 60.0)));
        assert!(c.get(&key_of("tok"), 0.0).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = TokenCache::new(50);
        for i in 0..500 {
            c.insert(key_of(&i.to_string()), Arc::new(V(unix_now() + 60.0)));
        }
        c.inner.as_ref().unwrap().run_pending_tasks();
        assert!(c.len() <= 50, "{}", c.len());
    }
}
