//! The ALB's public keys by `kid`: how they are fetched, kept and re-validated.
//!
//! The key for a `kid` is at `{key_url}/{kid}` (the URL comes from the
//! configured ARN's region, never from the token). [`AlbKeys`] limits the
//! fetches: one per `kid` at a time, one per interval whatever the `kid`, a
//! bounded queue where each verified caller holds one place and the slot goes
//! to the `kid` the most distinct callers wait for.

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::alphabet::STANDARD;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::penalty::{PenaltyBox, FETCH_INTERVAL, PENALTY};
use crate::rejection::Rejection;

/// Largest key document accepted (a P-256 PEM is about 180 bytes).
const MAX_KEY_BYTES: usize = 4 * 1024;
/// ALB keys kept at once (only keys the key URL served and that parse get
/// here; past it the oldest goes): at most 64 × about 1 KiB.
const MAX_KEYS: usize = 64;
/// A kept key is fetched again once this old, unless configured otherwise.
pub const KEY_MAX_AGE: Duration = Duration::from_secs(3600);
/// Distinct `kid`s waiting for a fetch slot at once; past it a new `kid` is
/// refused at once, while a `kid` already waiting still takes waiters. Each
/// is at most [`PENDING_ENTRY_BYTES`]: 256 × 1 KiB in all.
pub const MAX_PENDING_KIDS: usize = 256;
/// Distinct callers counted per waiting `kid` (8 bytes each); past it the
/// count stays at this.
const MAX_CALLERS_COUNTED: usize = 64;
/// An upper bound on one waiting `kid`'s memory: the `kid` (a UUID), its
/// callers' hashes, the entry and its channel.
pub const PENDING_ENTRY_BYTES: usize = 1024;
/// An upper bound on one kept key's memory: the `kid`, the parsed key, the entry.
const KEPT_ENTRY_BYTES: usize = 1024;
/// The most the ALB keys take, waiting and kept.
pub const MAX_KEYS_BYTES: u64 =
    (MAX_PENDING_KIDS * PENDING_ENTRY_BYTES + MAX_KEYS * KEPT_ENTRY_BYTES) as u64;
/// How many fetch intervals a request waits for its `kid`'s fetch to start
/// before it is refused.
pub const MAX_WAIT_INTERVALS: u32 = 3;

/// The PEM body's standard base64.
const PEM_BASE64: GeneralPurpose = GeneralPurpose::new(&STANDARD, GeneralPurposeConfig::new());

/// An ALB public key, built once per fetched PEM.
pub struct AlbKey {
    key: DecodingKey,
}

impl AlbKey {
    /// Verifies the ES256 signature (its base64url part, padded or not) over
    /// the raw signing input, through `jsonwebtoken`.
    pub(crate) fn verify(&self, signing_input: &str, signature: &str) -> Result<(), Rejection> {
        // The signed text keeps its padding; the signature's padding is only encoding.
        let unpadded = signature.trim_end_matches('=');
        match jsonwebtoken::crypto::verify(
            unpadded,
            signing_input.as_bytes(),
            &self.key,
            Algorithm::ES256,
        ) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(Rejection::AlbSignature),
        }
    }
}

/// How ALB key fetches are timed (the defaults, or shorter in tests).
#[derive(Debug, Clone, Copy)]
pub struct KeyTiming {
    /// A `kid` whose URL answered 404 (or not a key) is not fetched again for this long.
    pub penalty: Duration,
    /// At most one key fetch per this interval, whatever the `kid`.
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

/// Why a key could not be had; logged, never sent to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyError {
    /// No fetch slot in time, the queue full, or the caller already waits
    /// for another `kid`: not the `kid`'s fault, no penalty.
    Busy,
    /// The endpoint failed for now (5xx, timeout, connection): no penalty,
    /// the next request may fetch at the normal rate.
    Transient,
    /// The URL answered 404 (or not a P-256 key): the `kid` is penalised,
    /// and a kept key under it dropped.
    Refused,
}

impl KeyError {
    /// The refusal a request gets: 401 for a `kid` the endpoint refused, 503 otherwise.
    fn rejection(self) -> Rejection {
        match self {
            KeyError::Busy | KeyError::Transient => Rejection::AlbKeyUnavailable,
            KeyError::Refused => Rejection::AlbUnknownKid,
        }
    }
}

/// What the waiters of one `kid` are told when its fetch ends.
type Outcome = Result<Arc<AlbKey>, KeyError>;

/// A request's place among a `kid`'s waiters, and where its outcome arrives.
type Joined<'a> = (Waiter<'a>, watch::Receiver<Option<Outcome>>);

/// One `kid` waiting for a fetch slot, or being fetched.
pub(crate) struct Pending {
    /// Requests waiting for this `kid` now.
    pub(crate) waiters: usize,
    /// Hashes of the distinct verified callers that asked for it (at most
    /// [`MAX_CALLERS_COUNTED`]): the slot goes by how many, so one caller's
    /// requests, however many, count once.
    callers: Vec<u64>,
    /// Arrival order, unique per entry: among equals the longest waiting goes
    /// first, and a waiter only withdraws from the entry it joined.
    since: u64,
    /// Its slot came and its fetch runs: it is not picked again.
    in_flight: bool,
    done: watch::Sender<Option<Outcome>>,
}

/// The `kid`s waiting for the key URL's next fetch slot.
#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) pending: HashMap<String, Pending>,
    arrivals: u64,
}

impl Queue {
    /// The `kid` the next slot goes to: the most distinct callers, then the longest waiting.
    fn top(&self) -> Option<(&String, &Pending)> {
        self.pending
            .iter()
            .filter(|(_, p)| !p.in_flight)
            .max_by_key(|(_, p)| (p.callers.len(), Reverse(p.since)))
    }

    /// Whether `caller` already waits for a `kid` other than `kid`: a caller
    /// holds one place in the queue at a time, so one token cannot fill it.
    fn waits_elsewhere(&self, caller: u64, kid: &str) -> bool {
        self.pending
            .iter()
            .any(|(k, p)| k != kid && p.callers.contains(&caller))
    }
}

/// A key as kept, with when it is to be fetched again.
struct Kept {
    key: Arc<AlbKey>,
    fetched: Instant,
    revalidate_at: Instant,
}

/// What a key fetch needs, shared with the task that runs it.
pub(crate) struct Store {
    key_url: String,
    fetcher: Fetcher,
    metrics: Arc<Metrics>,
    timing: KeyTiming,
    kept: RwLock<HashMap<String, Kept>>,
    penalty: PenaltyBox,
    queue: Mutex<Queue>,
}

impl Store {
    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept key for `kid`, and whether it is due to be fetched again.
    fn kept(&self, kid: &str) -> Option<(Arc<AlbKey>, bool)> {
        let kept = self.kept.read().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        kept.get(kid)
            .map(|k| (k.key.clone(), now >= k.revalidate_at))
    }

    /// A kept key whose re-validation failed for now stays, and is tried
    /// again a penalty length later: requests meanwhile do not wait for it.
    fn postpone(&self, kid: &str) {
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kept.get_mut(kid) {
            k.revalidate_at = Instant::now() + self.timing.penalty;
        }
    }

    /// Keeps `key` for `kid`, the oldest going when full.
    fn keep(&self, kid: &str, key: Arc<AlbKey>) {
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_KEYS && !kept.contains_key(kid) {
            let oldest = kept.iter().min_by_key(|(_, k)| k.fetched);
            if let Some(oldest) = oldest.map(|(kid, _)| kid.clone()) {
                kept.remove(&oldest);
            }
        }
        let fetched = Instant::now();
        let revalidate_at = fetched + self.timing.max_age;
        let entry = Kept {
            key,
            fetched,
            revalidate_at,
        };
        kept.insert(kid.to_string(), entry);
    }

    fn drop_kept(&self, kid: &str) {
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        kept.remove(kid);
    }

    /// Fetches and parses the key for `kid`, counting the fetch.
    async fn get(&self, kid: &str) -> Result<AlbKey, (KeyError, String)> {
        let url = format!("{}/{kid}", self.key_url);
        let body = self.fetcher.get(&url, MAX_KEY_BYTES).await;
        self.metrics.alb_key_fetch(body.is_ok());
        let body = body.map_err(|e| {
            let kind = if e.is_transient() {
                KeyError::Transient
            } else {
                KeyError::Refused
            };
            (kind, e.to_string())
        })?;
        parse_pem_key(&body).ok_or_else(|| (KeyError::Refused, "not a P-256 public key PEM".into()))
    }
}

/// One started fetch. However its task ends (done, panicked, or dropped with
/// the runtime), dropping this takes the `kid` off the queue and tells its
/// waiters, so none waits on a fetch that no longer runs.
struct Flight {
    store: Arc<Store>,
    kid: String,
    since: u64,
    outcome: Outcome,
}

impl Flight {
    async fn run(mut self) {
        let store = &*self.store;
        self.outcome = match store.get(&self.kid).await {
            Ok(key) => {
                let key = Arc::new(key);
                // Kept before the entry goes, so a later request finds one or the other.
                store.keep(&self.kid, key.clone());
                Ok(key)
            }
            Err((why, error)) => {
                tracing::warn!(key_url = %store.key_url, kid = %self.kid, %error, ?why, "ALB public key fetch failed");
                match why {
                    KeyError::Refused => {
                        store.drop_kept(&self.kid);
                        store.penalty.penalise(&self.kid);
                    }
                    KeyError::Transient => store.postpone(&self.kid),
                    KeyError::Busy => {}
                }
                Err(why)
            }
        };
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut queue = self.store.queue();
        if queue.pending.get(&self.kid).map(|p| p.since) == Some(self.since) {
            if let Some(p) = queue.pending.remove(&self.kid) {
                p.done.send_replace(Some(self.outcome.clone()));
            }
        }
    }
}

/// One request's place among a `kid`'s waiters; leaving (answered, refused or
/// dropped) withdraws it, and the last to leave a `kid` not yet fetched frees
/// its place in the queue.
struct Waiter<'a> {
    store: &'a Store,
    kid: &'a str,
    since: u64,
}

impl Waiter<'_> {
    fn in_flight(&self) -> bool {
        let queue = self.store.queue();
        queue
            .pending
            .get(self.kid)
            .is_some_and(|p| p.since == self.since && p.in_flight)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut queue = self.store.queue();
        let Some(p) = queue.pending.get_mut(self.kid) else {
            return;
        };
        if p.since != self.since {
            return;
        }
        p.waiters = p.waiters.saturating_sub(1);
        if p.waiters == 0 && !p.in_flight {
            queue.pending.remove(self.kid);
        }
    }
}

/// The ALB public keys by `kid`: concurrent requests for one `kid` share one
/// fetch, the key URL is fetched at most once per interval whatever the
/// `kid`s, and a request waits at most [`MAX_WAIT_INTERVALS`] intervals for
/// its `kid`'s fetch to start.
///
/// Only the endpoint's answer about a `kid` penalises it: a 404 (or a body
/// that is not a P-256 key) puts it in the penalty box and drops a key kept
/// under it. A failure of the endpoint itself (5xx, timeout, connection) is
/// a 503 for the request and no penalty. A kept key is fetched again once
/// older than the configured age; if that fetch fails for now, the key stays.
///
/// Unknown `kid`s queue for the fetch slots (at most [`MAX_PENDING_KIDS`]),
/// each verified caller (the access token's `sub`) waits for one `kid` at a
/// time, and each slot goes to the `kid` the most distinct callers asked for,
/// then the one waiting longest: one caller's flood of junk `kid`s holds one
/// place and cannot keep out a real new key.
pub struct AlbKeys {
    pub(crate) store: Arc<Store>,
    timing: KeyTiming,
    /// Hashes callers' `sub`s with a key of this process's own.
    caller_hash: RandomState,
    /// Held by the one waiter that waits for the next slot and starts its fetch.
    slot: tokio::sync::Mutex<()>,
}

impl AlbKeys {
    /// Keys from `{key_url}/{kid}`.
    pub fn new(
        key_url: String,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
        timing: KeyTiming,
    ) -> AlbKeys {
        AlbKeys {
            store: Arc::new(Store {
                key_url,
                fetcher,
                metrics,
                timing,
                kept: RwLock::new(HashMap::new()),
                penalty: PenaltyBox::new(timing.penalty, timing.interval),
                queue: Mutex::new(Queue::default()),
            }),
            timing,
            caller_hash: RandomState::new(),
            slot: tokio::sync::Mutex::new(()),
        }
    }

    /// The public key for `kid`, for a request whose verified caller is `caller`.
    pub(crate) async fn key(&self, kid: &str, caller: &str) -> Result<Arc<AlbKey>, Rejection> {
        let caller = self.caller_hash.hash_one(caller);
        match self.store.kept(kid) {
            Some((key, false)) => Ok(key),
            // Re-validated: a 404 drops it, a failure for now keeps it.
            Some((key, true)) => match self.fetch(kid, caller).await {
                Err(KeyError::Refused) => Err(Rejection::AlbUnknownKid),
                Ok(key) => Ok(key),
                Err(KeyError::Busy | KeyError::Transient) => Ok(key),
            },
            None if self.store.penalty.is_penalised(kid) => Err(Rejection::AlbUnknownKid),
            None => self.fetch(kid, caller).await.map_err(KeyError::rejection),
        }
    }

    /// Waits for `kid`'s fetch: joins its waiters, and while it waits, takes
    /// its turn at starting the fetch of whichever `kid` the next slot goes to.
    async fn fetch(&self, kid: &str, caller: u64) -> Outcome {
        let deadline = Instant::now() + self.timing.interval * MAX_WAIT_INTERVALS;
        let (waiter, mut done) = self.join(kid, caller)?;
        loop {
            tokio::select! {
                biased;
                outcome = outcome(&mut done) => return outcome,
                () = tokio::time::sleep_until(deadline) => return give_up(&waiter, &mut done).await,
                _slot = self.slot.lock(), if !waiter.in_flight() => {
                    tokio::select! {
                        biased;
                        outcome = outcome(&mut done) => return outcome,
                        () = tokio::time::sleep_until(deadline) => return give_up(&waiter, &mut done).await,
                        () = self.next_slot() => self.start_top_fetch(),
                    }
                }
            }
        }
    }

    /// Joins `kid`'s waiters (queueing it if new), or answers at once: the
    /// queue is full, or `caller` waits for another `kid` already.
    fn join<'a>(&'a self, kid: &'a str, caller: u64) -> Result<Joined<'a>, KeyError> {
        let store = &*self.store;
        let mut queue = store.queue();
        if queue.waits_elsewhere(caller, kid) {
            return Err(KeyError::Busy);
        }
        if let Some(p) = queue.pending.get_mut(kid) {
            p.waiters += 1;
            if p.callers.len() < MAX_CALLERS_COUNTED && !p.callers.contains(&caller) {
                p.callers.push(caller);
            }
            let waiter = Waiter {
                store,
                kid,
                since: p.since,
            };
            return Ok((waiter, p.done.subscribe()));
        }
        if queue.pending.len() >= MAX_PENDING_KIDS {
            return Err(KeyError::Busy);
        }
        queue.arrivals += 1;
        let since = queue.arrivals;
        let (done, rx) = watch::channel(None);
        let pending = Pending {
            waiters: 1,
            callers: vec![caller],
            since,
            in_flight: false,
            done,
        };
        queue.pending.insert(kid.to_string(), pending);
        Ok((Waiter { store, kid, since }, rx))
    }

    /// Returns once the key URL's next fetch slot is open.
    async fn next_slot(&self) {
        loop {
            let wait = self.store.penalty.until_next_slot();
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes the open slot for the top `kid` and starts its fetch. The fetch
    /// runs in its own task, so the request that started it may leave (time
    /// out, or its client hang up) without cancelling it for the others.
    fn start_top_fetch(&self) {
        let mut queue = self.store.queue();
        let Some((kid, since)) = queue.top().map(|(k, p)| (k.clone(), p.since)) else {
            return;
        };
        if self.store.penalty.reserve_within(Duration::ZERO).is_none() {
            return;
        }
        if let Some(p) = queue.pending.get_mut(&kid) {
            p.in_flight = true;
        }
        drop(queue);
        let flight = Flight {
            store: self.store.clone(),
            kid,
            since,
            outcome: Err(KeyError::Busy),
        };
        tokio::spawn(flight.run());
    }
}

/// The outcome of the fetch `done` waits for; a fetch that ended without one
/// counts as no slot.
async fn outcome(done: &mut watch::Receiver<Option<Outcome>>) -> Outcome {
    match done.wait_for(Option::is_some).await {
        Ok(got) => got.clone().unwrap_or(Err(KeyError::Busy)),
        Err(_) => Err(KeyError::Busy),
    }
}

/// At the deadline: a fetch already under way is waited for (its own time
/// limits bound it); otherwise the request is refused.
async fn give_up(waiter: &Waiter<'_>, done: &mut watch::Receiver<Option<Outcome>>) -> Outcome {
    if waiter.in_flight() {
        outcome(done).await
    } else {
        Err(KeyError::Busy)
    }
}

/// A `-----BEGIN PUBLIC KEY-----` P-256 SubjectPublicKeyInfo, checked once here.
pub(crate) fn parse_pem_key(pem: &[u8]) -> Option<AlbKey> {
    let text = std::str::from_utf8(pem).ok()?;
    let body = text
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = PEM_BASE64.decode(b64).ok()?;
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &der).ok()?;
    Some(AlbKey {
        key: DecodingKey::from_ec_der(&der),
    })
}
