//! Fetching the signing key for a `kid` we do not know, for either key source.
//!
//! A [`KeySource`] names the document that answers for a `kid` (its
//! *target*: the one JWKS for every `kid` of a pool, `{key_url}/{kid}` for
//! ALB) and fetches it. [`KeyFetch`] keeps what the fetches brought and
//! limits them:
//! - one fetch per target at a time, shared by its waiters; a fetch that
//!   started before a request arrived does not tell it "not there" (the key
//!   may have been published since): the request waits for the next one;
//! - at most one fetch per interval per source, whatever the targets, and a
//!   `kid` a fetch said is not there is refused without one for the penalty
//!   length ([`PenaltyBox`]);
//! - a request waits at most [`MAX_WAIT_INTERVALS`] intervals for its
//!   target's fetch to start, and the slots go fairly ([`FetchQueue`]);
//! - a failure of the endpoint itself (5xx, timeout, connection) answers 503
//!   and penalises nothing; only the source's answer about a `kid` (404, not
//!   a key, not in the set) penalises it and drops a key kept under it;
//! - kept keys are fetched again once the configured age old; a failure for
//!   now keeps them, and tries again a penalty length later.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

use crate::fetch::Fetcher;
use crate::fetch_queue::{wait_done, Done, DoneReceiver, Failure, FetchQueue, Waiter};
use crate::fetch_queue::{MAX_PENDING_TARGETS, PENDING_ENTRY_BYTES};
use crate::kept_keys::{KeptKeys, KeyEntry, MAX_KEPT_BYTES};
use crate::metrics::Metrics;
use crate::penalty::{PenaltyBox, FETCH_INTERVAL, MAX_PENALISED_BYTES, PENALTY};
use crate::rejection::Rejection;

/// How many fetch intervals a request waits for its target's fetch to start
/// before it is refused.
pub const MAX_WAIT_INTERVALS: u32 = 3;
/// A kept key is fetched again once this old, unless configured otherwise.
pub const KEY_MAX_AGE: Duration = Duration::from_secs(3600);
/// The most one key source's penalty box, queue and kept keys take.
pub const KEY_FETCH_MAX_BYTES: u64 =
    MAX_PENALISED_BYTES + (MAX_PENDING_TARGETS * PENDING_ENTRY_BYTES + MAX_KEPT_BYTES) as u64;

/// How a source's fetches are timed (the defaults, or shorter in tests).
#[derive(Debug, Clone, Copy)]
pub struct KeyTiming {
    /// A `kid` a fetch said is not there is not fetched again for this long.
    pub penalty: Duration,
    /// At most one fetch per this interval, whatever the `kid`.
    pub interval: Duration,
    /// A kept key is fetched again once this old.
    pub max_age: Duration,
}

impl Default for KeyTiming {
    fn default() -> Self {
        KeyTiming {
            penalty: PENALTY,
            interval: FETCH_INTERVAL,
            max_age: KEY_MAX_AGE,
        }
    }
}

/// The refusals a source's requests get.
pub(crate) struct Refusals {
    /// The source has no key for the `kid` (401).
    pub(crate) unknown: Rejection,
    /// The source lists the `kid` with no usable key (401).
    pub(crate) unusable: Rejection,
    /// The key could not be had for now (503).
    pub(crate) unavailable: Rejection,
}

/// Where a source's keys come from.
pub(crate) trait KeySource: Send + Sync + 'static {
    /// A verification key, built once per fetched entry.
    type Key: Send + Sync + 'static;
    /// What its requests are refused with.
    const REFUSALS: Refusals;
    /// The source at `url`, fetching with `fetcher`, counting into `metrics`.
    fn at(url: String, fetcher: Fetcher, metrics: Arc<Metrics>) -> Self;
    /// The document that answers for `kid`: a fetch of it replaces what its
    /// last fetch brought.
    fn target<'k>(&self, kid: &'k str) -> &'k str;
    /// Fetches `target` (and counts it): its entries, or why not
    /// ([`Failure::Transient`] or [`Failure::Refused`]; never `Busy`).
    fn fetch(
        &self,
        target: &str,
    ) -> impl Future<Output = Result<Vec<KeyEntry<Self::Key>>, Failure>> + Send;
    /// Counts a request refused from the penalty box.
    fn count_penalised(&self);
}

/// What a fetch needs, shared with the task that runs it.
struct Shared<S: KeySource> {
    source: S,
    timing: KeyTiming,
    kept: KeptKeys<S::Key>,
    penalty: PenaltyBox,
    queue: FetchQueue,
}

impl<S: KeySource> Shared<S> {
    /// Fetches `target` and keeps what it says.
    async fn fetch_and_keep(&self, target: &str) -> Result<(), Failure> {
        let entries = self.source.fetch(target).await;
        match entries {
            Ok(entries) => {
                self.kept.replace(target, entries, self.timing.max_age);
                return Ok(());
            }
            Err(Failure::Refused) => self.kept.remove(target),
            Err(Failure::Transient | Failure::Busy) => {
                let retry = Instant::now() + self.timing.penalty;
                self.kept.postpone(target, retry);
            }
        }
        entries.map(drop)
    }
}

/// One started fetch. However its task ends (done, panicked, or dropped with
/// the runtime), dropping this takes the target off the queue and tells its
/// waiters, so none waits on a fetch that no longer runs.
struct Flight<S: KeySource> {
    shared: Arc<Shared<S>>,
    target: String,
    since: u64,
    done: Option<Done>,
}

impl<S: KeySource> Flight<S> {
    async fn run(mut self) {
        let started = Instant::now();
        let outcome = self.shared.fetch_and_keep(&self.target).await;
        self.done = Some(Done { started, outcome });
    }
}

impl<S: KeySource> Drop for Flight<S> {
    fn drop(&mut self) {
        let done = self.done.unwrap_or(Done {
            started: Instant::now(),
            outcome: Err(Failure::Busy),
        });
        self.shared.queue.finish(&self.target, self.since, done);
    }
}

/// A key source's keys: kept ones at once, unknown ones fetched within the limits above.
pub(crate) struct KeyFetch<S: KeySource> {
    shared: Arc<Shared<S>>,
    /// Hashes callers with a key of this process's own.
    caller_hash: RandomState,
    /// Held by the one waiter that waits for the next slot and starts its fetch.
    slot: tokio::sync::Mutex<()>,
}

impl<S: KeySource> KeyFetch<S> {
    /// Keys from the source at `url`, fetched as `timing` allows; nothing is
    /// fetched until a lookup (or [`KeyFetch::load`]).
    pub(crate) fn new(
        url: String,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
        timing: KeyTiming,
    ) -> KeyFetch<S> {
        KeyFetch {
            shared: Arc::new(Shared {
                source: S::at(url, fetcher, metrics),
                timing,
                kept: KeptKeys::default(),
                penalty: PenaltyBox::new(timing.penalty, timing.interval),
                queue: FetchQueue::default(),
            }),
            caller_hash: RandomState::new(),
            slot: tokio::sync::Mutex::new(()),
        }
    }

    /// The waiting targets (tests look at them).
    #[cfg(test)]
    pub(crate) fn queue(&self) -> &FetchQueue {
        &self.shared.queue
    }

    /// True when no key is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.shared.kept.is_empty()
    }

    /// The key for `kid`, for a request from verified `caller` (`None`: no
    /// verified caller yet, it holds no place of its own in the queue).
    pub(crate) async fn key(
        &self,
        kid: &str,
        caller: Option<&str>,
    ) -> Result<Arc<S::Key>, Rejection> {
        let refusals = S::REFUSALS;
        let target = self.shared.source.target(kid);
        match self.shared.kept.get(target, kid) {
            Some((key, false)) => return key.ok_or(refusals.unusable),
            // One request waits for the re-validation; the others meanwhile use the kept key.
            Some((key, true)) if self.shared.queue.contains(target) => {
                return key.ok_or(refusals.unusable)
            }
            Some((_, true)) => {}
            None if self.shared.penalty.is_penalised(kid) => {
                self.shared.source.count_penalised();
                return Err(refusals.unknown);
            }
            None => {}
        }
        let caller = caller.map(|c| self.caller_hash.hash_one(c));
        let outcome = self.refresh(target, kid, caller).await;
        match (self.shared.kept.get(target, kid), outcome) {
            // Fetched again, or kept through a failure for now.
            (Some((key, _)), _) => key.ok_or(refusals.unusable),
            (None, Ok(()) | Err(Failure::Refused)) => {
                self.shared.penalty.penalise(kid);
                Err(refusals.unknown)
            }
            (None, Err(Failure::Busy | Failure::Transient)) => Err(refusals.unavailable),
        }
    }

    /// Waits for a fetch of `kid`'s target that answers for this request:
    /// one that started after it arrived, or one that brought the `kid`.
    async fn refresh(&self, target: &str, kid: &str, caller: Option<u64>) -> Result<(), Failure> {
        let arrived = Instant::now();
        let deadline = arrived + self.shared.timing.interval * MAX_WAIT_INTERVALS;
        loop {
            let done = self.fetched(target, caller, deadline).await?;
            if done.started >= arrived || self.shared.kept.get(target, kid).is_some() {
                return done.outcome;
            }
        }
    }

    /// A source's first load: fetches `target` until a key is kept, backing
    /// off up to the penalty length. Returns at once if a request's fetch got
    /// there first.
    pub(crate) async fn load(&self, target: &str) {
        let mut backoff = Duration::from_millis(500);
        loop {
            if !self.is_empty() {
                return;
            }
            let deadline = Instant::now() + self.shared.timing.interval * MAX_WAIT_INTERVALS;
            let fetched = self.fetched(target, None, deadline).await;
            if fetched.is_ok_and(|done| done.outcome.is_ok()) {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.shared.timing.penalty);
        }
    }

    /// Waits for `target`'s fetch: joins its waiters, and while it waits,
    /// takes its turn at starting the fetch of whichever target the next slot
    /// goes to. Past `deadline`, a fetch not started is given up.
    async fn fetched(
        &self,
        target: &str,
        caller: Option<u64>,
        deadline: Instant,
    ) -> Result<Done, Failure> {
        let (waiter, mut done) = self.shared.queue.join(target, caller)?;
        loop {
            // Dropped (the lock released) as soon as another branch wins.
            let start_next = async {
                let _slot = self.slot.lock().await;
                self.next_slot().await;
                self.start_top_fetch();
            };
            tokio::select! {
                biased;
                got = wait_done(&mut done) => return got,
                () = tokio::time::sleep_until(deadline) => return give_up(&waiter, &mut done).await,
                () = start_next, if !waiter.in_flight() => {}
            }
        }
    }

    /// Returns once the source's next fetch slot is open.
    async fn next_slot(&self) {
        loop {
            let wait = self.shared.penalty.until_next_slot();
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes the open slot for the top target and starts its fetch. The
    /// fetch runs in its own task, so the request that started it may leave
    /// (time out, or its client hang up) without cancelling it for the others.
    fn start_top_fetch(&self) {
        let penalty = &self.shared.penalty;
        let top = self.shared.queue.take_top(|| penalty.try_reserve());
        if let Some((target, since)) = top {
            let flight = Flight {
                shared: self.shared.clone(),
                target,
                since,
                done: None,
            };
            // In the span of the request that starts it: its trace shows the fetch it waited for.
            tokio::spawn(flight.run().in_current_span());
        }
    }
}

/// At the deadline: a fetch already under way is waited for (its own time
/// limits bound it); otherwise the request is refused.
async fn give_up(waiter: &Waiter<'_>, done: &mut DoneReceiver) -> Result<Done, Failure> {
    if waiter.in_flight() {
        wait_done(done).await
    } else {
        Err(Failure::Busy)
    }
}
