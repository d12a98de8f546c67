//! How often a key URL may be asked for a `kid` we do not know.
//!
//! Two limits, shared by the JWKS and the ALB key paths: a `kid` whose fetch
//! did not bring it is not fetched again for [`PENALTY`] (per `kid`, so one
//! junk `kid` cannot hold back a real rotation), and the URL is fetched at
//! most once per [`FETCH_INTERVAL`] whatever the `kid`s (so a flood of fresh
//! junk `kid`s stays bounded). `crate::key_fetch::KeyFetch` decides which
//! waiting fetch an open slot goes to.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a `kid` that a fetch did not bring is refused without a fetch.
pub const PENALTY: Duration = Duration::from_secs(10);
/// At most one fetch of a key URL per this interval.
pub const FETCH_INTERVAL: Duration = Duration::from_secs(1);
/// The memory the penalised `kid`s may take, weighed in bytes (the `kid` and
/// [`ENTRY_OVERHEAD`]); past it the least used go first. A `kid` is at most
/// [`crate::jwt::MAX_KID_LEN`] bytes, so this holds at least 10,000 of them.
pub const MAX_PENALISED_BYTES: u64 = 4 * 1024 * 1024;
/// The cache's own bookkeeping per entry, counted on top of the `kid`.
pub const ENTRY_OVERHEAD: u32 = 256;

/// Per-`kid` penalties plus a fetch rate for one key URL.
pub struct PenaltyBox {
    kids: moka::sync::Cache<String, ()>,
    interval: Duration,
    /// The earliest moment the next fetch may start.
    next_slot: Mutex<Option<Instant>>,
}

impl PenaltyBox {
    /// `penalty` per `kid`, one fetch per `interval`.
    pub fn new(penalty: Duration, interval: Duration) -> PenaltyBox {
        PenaltyBox {
            kids: moka::sync::Cache::builder()
                .max_capacity(MAX_PENALISED_BYTES)
                .weigher(|kid: &String, _| {
                    u32::try_from(kid.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                .time_to_live(penalty)
                .build(),
            interval,
            next_slot: Mutex::new(None),
        }
    }

    /// True while `kid` is in the box.
    pub fn is_penalised(&self, kid: &str) -> bool {
        self.kids.contains_key(kid)
    }

    /// Puts `kid` in the box for the penalty length.
    pub fn penalise(&self, kid: &str) {
        self.kids.insert(kid.to_string(), ());
    }

    /// The weighed bytes the box holds now (after pending evictions).
    #[cfg(test)]
    pub fn weighed_bytes(&self) -> u64 {
        self.kids.run_pending_tasks();
        self.kids.weighted_size()
    }

    /// Takes the fetch slot if it is open (true); the next opens an interval later.
    pub fn try_reserve(&self) -> bool {
        let now = Instant::now();
        let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
        if next.is_some_and(|t| t > now) {
            return false;
        }
        *next = Some(now + self.interval);
        true
    }

    /// How long until the next fetch slot opens (zero when open), reserving nothing.
    pub fn until_next_slot(&self) -> Duration {
        let next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
        next.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_are_penalised_one_by_one() {
        let b = PenaltyBox::new(PENALTY, FETCH_INTERVAL);
        b.penalise("junk");
        assert!(b.is_penalised("junk"));
        assert!(!b.is_penalised("real"));
    }

    #[test]
    fn the_box_is_bounded_in_bytes_not_entries() {
        let b = PenaltyBox::new(PENALTY, FETCH_INTERVAL);
        let long = "k".repeat(12 * 1024);
        for i in 0..2_000 {
            b.penalise(&format!("{i}{long}"));
        }
        assert!(
            b.weighed_bytes() <= MAX_PENALISED_BYTES,
            "{}",
            b.weighed_bytes()
        );
        assert!(b.weighed_bytes() > MAX_PENALISED_BYTES / 2);
    }

    #[test]
    fn a_penalty_ends() {
        let b = PenaltyBox::new(Duration::from_millis(100), FETCH_INTERVAL);
        b.penalise("junk");
        std::thread::sleep(Duration::from_millis(150));
        assert!(!b.is_penalised("junk"));
    }

    #[test]
    fn fetches_are_spaced_by_the_interval() {
        let interval = Duration::from_millis(100);
        let b = PenaltyBox::new(PENALTY, interval);
        assert_eq!(b.until_next_slot(), Duration::ZERO, "open before any fetch");
        assert!(b.try_reserve(), "the first fetch goes at once");
        assert!(!b.try_reserve(), "the next slot is an interval away");
        let wait = b.until_next_slot();
        assert!(wait > Duration::ZERO && wait <= interval, "{wait:?}");
        assert!(b.until_next_slot() <= wait, "looking again moved nothing");
        std::thread::sleep(wait);
        assert!(b.try_reserve());
    }
}
