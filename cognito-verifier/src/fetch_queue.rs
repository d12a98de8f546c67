//! The fetch targets waiting for a key source's next fetch slot, and who waits for each.
//!
//! Each verified caller holds one place at a time (so one token cannot fill
//! the queue), and a slot goes to the target the most distinct callers wait
//! for, then to the one waiting longest: one caller's requests, however many,
//! count once.

use std::cmp::Reverse;
use std::collections::hash_map::{Entry, HashMap};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;
use tokio::time::Instant;

/// Targets waiting for a fetch slot at once; past it a new target is refused
/// at once, while a target already waiting still takes waiters.
pub const MAX_PENDING_TARGETS: usize = 256;
/// Distinct callers counted per waiting target (8 bytes each); past it the
/// count stays at this.
const MAX_CALLERS_COUNTED: usize = 64;
/// An upper bound on one waiting target's memory: the target (at most a
/// UUID), its callers' hashes, the entry and its channel.
pub const PENDING_ENTRY_BYTES: usize = 1024;

/// Why a fetch brought no key for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No fetch slot in time, the queue full, or the caller already waits
    /// for another target: not the key's fault, no penalty.
    Busy,
    /// The endpoint failed for now (5xx, timeout, connection; for a JWKS
    /// any failure): no penalty, the next request may fetch at the normal rate.
    Transient,
    /// The endpoint answered that it has no such key (404, or not a key):
    /// the `kid` is penalised, and a key kept under it dropped.
    Refused,
}

/// What the waiters of one target are told when its fetch ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    /// When the fetch started: it answers "not there" only for requests that arrived before.
    pub(crate) started: Instant,
    pub(crate) outcome: Result<(), Failure>,
}

/// One target waiting for a fetch slot, or being fetched.
struct Pending {
    /// Requests waiting for it now.
    waiters: usize,
    /// Hashes of the distinct verified callers that asked for it.
    callers: Vec<u64>,
    /// Arrival order, unique per entry: among equals the longest waiting goes
    /// first, and a waiter only withdraws from the entry it joined.
    since: u64,
    /// Its slot came and its fetch runs: it is not picked again.
    in_flight: bool,
    done: watch::Sender<Option<Done>>,
}

#[derive(Default)]
struct Targets {
    pending: HashMap<String, Pending>,
    arrivals: u64,
}

/// The targets waiting for one key source's fetch slots.
#[derive(Default)]
pub(crate) struct FetchQueue {
    targets: Mutex<Targets>,
}

/// Where a waiter learns how its target's fetch ended.
pub(crate) type DoneReceiver = watch::Receiver<Option<Done>>;

impl FetchQueue {
    fn lock(&self) -> MutexGuard<'_, Targets> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `target`'s waiters (queueing it if new), or refuses at once:
    /// the queue is full, or `caller` waits for another target already.
    pub(crate) fn join<'a>(
        &'a self,
        target: &'a str,
        caller: Option<u64>,
    ) -> Result<(Waiter<'a>, DoneReceiver), Failure> {
        let Targets { pending, arrivals } = &mut *self.lock();
        let elsewhere = |c| {
            pending
                .iter()
                .any(|(t, p)| t != target && p.callers.contains(&c))
        };
        if caller.is_some_and(elsewhere) {
            return Err(Failure::Busy);
        }
        let full = pending.len() >= MAX_PENDING_TARGETS;
        let p = match pending.entry(target.to_string()) {
            Entry::Occupied(p) => p.into_mut(),
            Entry::Vacant(_) if full => return Err(Failure::Busy),
            Entry::Vacant(p) => {
                *arrivals += 1;
                p.insert(Pending {
                    waiters: 0,
                    callers: Vec::new(),
                    since: *arrivals,
                    in_flight: false,
                    done: watch::channel(None).0,
                })
            }
        };
        p.waiters += 1;
        if let Some(c) = caller {
            if p.callers.len() < MAX_CALLERS_COUNTED && !p.callers.contains(&c) {
                p.callers.push(c);
            }
        }
        let waiter = Waiter {
            queue: self,
            target,
            since: p.since,
        };
        Ok((waiter, p.done.subscribe()))
    }

    /// The target the open slot goes to, marked in flight, if `reserve` takes
    /// the slot: the most distinct callers, then the longest waiting.
    pub(crate) fn take_top(&self, reserve: impl FnOnce() -> bool) -> Option<(String, u64)> {
        let mut targets = self.lock();
        let (target, p) = targets
            .pending
            .iter_mut()
            .filter(|(_, p)| !p.in_flight)
            .max_by_key(|(_, p)| (p.callers.len(), Reverse(p.since)))?;
        if !reserve() {
            return None;
        }
        p.in_flight = true;
        Some((target.clone(), p.since))
    }

    /// Ends the fetch of `target`'s entry `since`: takes it off and tells its waiters.
    pub(crate) fn finish(&self, target: &str, since: u64, done: Done) {
        let mut targets = self.lock();
        if targets.pending.get(target).map(|p| p.since) == Some(since) {
            if let Some(p) = targets.pending.remove(target) {
                p.done.send_replace(Some(done));
            }
        }
    }

    /// True while `target` waits for a fetch or is being fetched.
    pub(crate) fn contains(&self, target: &str) -> bool {
        self.lock().pending.contains_key(target)
    }

    /// Targets queued or being fetched.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// The requests waiting for `target`.
    #[cfg(test)]
    pub(crate) fn waiters(&self, target: &str) -> Option<usize> {
        self.lock().pending.get(target).map(|p| p.waiters)
    }
}

/// One request's place among a target's waiters; leaving (answered, refused
/// or dropped) withdraws it, and the last to leave a target not yet fetched
/// frees its place in the queue.
pub(crate) struct Waiter<'a> {
    queue: &'a FetchQueue,
    target: &'a str,
    since: u64,
}

impl Waiter<'_> {
    /// True once the fetch this waiter waits for has started.
    pub(crate) fn in_flight(&self) -> bool {
        let targets = self.queue.lock();
        targets
            .pending
            .get(self.target)
            .is_some_and(|p| p.since == self.since && p.in_flight)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut targets = self.queue.lock();
        let Some(p) = targets.pending.get_mut(self.target) else {
            return;
        };
        if p.since != self.since {
            return;
        }
        p.waiters = p.waiters.saturating_sub(1);
        if p.waiters == 0 && !p.in_flight {
            targets.pending.remove(self.target);
        }
    }
}

/// How the fetch `done` waits for ended; a fetch that ended without telling counts as no slot.
pub(crate) async fn wait_done(done: &mut DoneReceiver) -> Result<Done, Failure> {
    match done.wait_for(Option::is_some).await {
        Ok(got) => got.ok_or(Failure::Busy),
        Err(_) => Err(Failure::Busy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(q: &FetchQueue) -> Option<String> {
        q.take_top(|| true).map(|(target, _)| target)
    }

    #[test]
    fn the_slot_goes_to_the_most_distinct_callers_then_the_longest_waiting() {
        let q = FetchQueue::default();
        let _a = q.join("a", Some(1)).unwrap();
        let _b = [q.join("b", Some(2)).unwrap(), q.join("b", Some(3)).unwrap()];
        let _c = [q.join("c", Some(4)).unwrap(), q.join("c", Some(4)).unwrap()];
        assert_eq!(top(&q).as_deref(), Some("b"), "two distinct callers");
        assert_eq!(q.take_top(|| false), None, "no open slot: nothing taken");
        assert_eq!(top(&q).as_deref(), Some("a"), "one caller each: by arrival");
        assert_eq!(top(&q).as_deref(), Some("c"));
        assert_eq!(top(&q), None, "each is taken once");
    }

    #[test]
    fn a_caller_holds_one_place_and_the_targets_waiting_are_bounded() {
        let q = FetchQueue::default();
        let _a = q.join("a", Some(1)).unwrap();
        assert_eq!(q.join("b", Some(1)).err(), Some(Failure::Busy));
        assert!(q.join("a", Some(1)).is_ok(), "its own target again");
        let targets: Vec<String> = (1..MAX_PENDING_TARGETS).map(|i| i.to_string()).collect();
        let waiting: Vec<_> = targets.iter().map(|t| q.join(t, None).unwrap()).collect();
        assert_eq!(q.join("one more", None).err(), Some(Failure::Busy));
        assert_eq!(
            q.waiters("a"),
            Some(1),
            "a request that left holds no place"
        );
        drop(waiting);
        assert_eq!(q.len(), 1, "the last waiter to leave frees the place");
    }

    #[tokio::test]
    async fn a_finished_fetch_tells_its_waiters_and_frees_its_target() {
        let q = FetchQueue::default();
        let (waiter, mut done) = q.join("a", None).unwrap();
        let (_, since) = q.take_top(|| true).unwrap();
        assert!(waiter.in_flight() && q.contains("a"));
        drop(waiter);
        assert!(q.contains("a"), "a fetch under way outlives its waiters");
        let outcome = Err(Failure::Transient);
        q.finish(
            "a",
            since,
            Done {
                started: Instant::now(),
                outcome,
            },
        );
        assert_eq!(wait_done(&mut done).await.map(|d| d.outcome), Ok(outcome));
        assert!(!q.contains("a"));
    }
}
