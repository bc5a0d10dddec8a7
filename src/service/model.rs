//! A deterministic model test of the cache protocol (module docs of `service`, README "Cache").
//!
//! Each seed plays a few dozen operations on two keys (validations, their fills, revocations,
//! rotations with and without grace, scope changes) against fakes of D1 and KV in which every
//! storage operation first yields to a seeded scheduler. The scheduler picks which task runs next
//! and moves a model clock between steps, by milliseconds, seconds, minutes or an hour, so that
//! operations interleave at every storage step, fills land arbitrarily late, and grants, fills
//! and denials outlive their freshness and their time to live. KV writes and reads fail at random
//! (some failed writes land all the same), and D1 calls fail, some after their change was saved.
//!
//! Whenever a validation admits a key, the model checks it against what the protocol promised
//! about that secret (`Promise`):
//! 1. once a revocation returned Ok, no validation that starts afterwards admits any secret the
//!    key has had;
//! 2. once D1 holds the revocation (whatever the call answers, even while it still runs), no
//!    validation that starts `MANAGED_GRANT_FRESH_MS` after that D1 change admits the key: the
//!    bound that a `propagation_failed` answer states;
//! 3. once a rotation returned Ok, no validation that starts afterwards admits a secret that this
//!    rotation deleted (with no grace: every older secret);
//! 4. the same bound as 2 for a secret a rotation deleted in D1, and for a grace deadline
//!    (`max(deadline, change + MANAGED_GRANT_FRESH_MS)`), whatever the rotation answered;
//! 5. never a key past its expiry, for another tenant, or a key that does not exist;
//! 6. a refusal that names a key (for the usage counts) names the presented secret's own key, of
//!    the request's tenant, for a reason D1 bears out: revoked, past its expiry, or ended by a
//!    rotation.
//!
//! After each seed, the audit log must replay to D1's state: every change saved (whatever its
//! call answered) has its event, no event lacks its change, and each update's `from` is the
//! value it replaced, however the scope changes raced.
//!
//! Left out: KV as seen from other locations (one location, whose reads see its own writes at
//! once; elsewhere KV lags by up to a minute), whether a narrowed scope applies at once (only
//! admissions are checked, not their scopes), creation racing anything, listing, and usage counting.
//! A validation's storage steps happen within `VALIDATION_MAX_MS` of its `now`, as a request's
//! do; management calls and fills may be delayed without bound.
//!
//! Seeds run without a trace; a failing seed is replayed with the trace on (the run is
//! deterministic) and reported with it. `CACHE_MODEL_SEED=1234` runs and prints one seed,
//! `CACHE_MODEL_SEEDS=n` changes how many seeds the test runs:
//! `CACHE_MODEL_SEED=1234 cargo test --lib model -- --nocapture`.

use super::*;
use crate::domain::{
    cache_entry::{DenyReason, Grant},
    scopes::Scopes,
};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

const DEFAULT_SEEDS: u64 = 3_000;
/// Operations started per seed; each is a handful of storage steps, and each validation that
/// misses may add a fill.
const OPERATIONS_PER_SEED: usize = 32;
const START: Millis = 1_700_000_000_000;
const MINUTE: Millis = 60_000;
/// How long after its `now` a validation may still be reading. The protocol needs this to stay
/// under `DENIED_TTL_SECONDS` minus `MANAGED_GRANT_FRESH_MS` (54 minutes): a validation that read
/// KV an hour after its `now` could find a revocation's denial expired and judge an old grant
/// fresh by its old clock. A request lives seconds, so the model allows generous minutes and
/// never an hour.
const VALIDATION_MAX_MS: Millis = 10 * MINUTE;

// ---------------------------------------------------------------------------------------------
// Randomness and the clock

/// SplitMix64: a few lines, seedable, and plenty for choosing interleavings and faults.
struct Rng(Cell<u64>);

impl Rng {
    fn next(&self) -> u64 {
        let state = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.0.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant here).
    fn below(&self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&self, chance: u32) -> bool {
        self.next() % 100 < u64::from(chance)
    }

    /// Uniform in `low..=high`.
    fn between(&self, low: Millis, high: Millis) -> Millis {
        low + (self.next() % (high - low + 1) as u64) as Millis
    }

    fn pick<'a, T>(&self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `+12m03.004s`: model time since the start of the seed.
fn at(time: Millis) -> String {
    let since = time - START;
    format!(
        "+{}m{:02}.{:03}s",
        since / MINUTE,
        since % MINUTE / 1000,
        since % 1000
    )
}

// ---------------------------------------------------------------------------------------------
// The world every fake, task and check shares

/// Fault rates of one seed, in percent. Seeds differ, so that some run on a healthy KV and
/// others on a failing one.
#[derive(Debug, Clone, Copy)]
struct Faults {
    kv_write: u32,
    kv_read: u32,
    d1: u32,
}

/// How an injected fault goes. Every fault of a KV write or a D1 change is reported to the
/// caller; `AppliedAnyway` is the timeout whose write landed nonetheless.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Refused,
    AppliedAnyway,
}

/// What the protocol promised about one secret: no validation that starts after `since` admits
/// it.
struct Promise {
    hash: KeyHash,
    kind: PromiseKind,
    since: Since,
    why: String,
}

/// The numbered promises of the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PromiseKind {
    /// 1.
    RevokeReturnedOk,
    /// 2.
    RevokedInD1,
    /// 3.
    RotationReturnedOk,
    /// 4.
    DeletedOrGracedInD1,
}

#[derive(Debug, Clone, Copy)]
enum Since {
    /// A validation whose first step comes after this event of the trace (a call returned).
    Event(u64),
    /// A validation whose `now` is at or after this time (a stated bound).
    Time(Millis),
}

#[derive(Default, Debug, Clone, Copy)]
struct Coverage {
    validations: u64,
    admitted: u64,
    /// Validations that started under a promise about their secret, by kind; the model is only
    /// as good as these numbers are large.
    under_revoke_ok: u64,
    under_revoke_bound: u64,
    under_rotation_ok: u64,
    under_deletion_or_grace_bound: u64,
    revokes_ok: u64,
    revokes_failed_after_d1: u64,
    rotations_ok: u64,
    rotations_failed: u64,
    fills_landed: u64,
    kv_write_faults: u64,
    /// KV reads that found a denial past its time to live.
    expired_denials_read: u64,
    /// Refusals that named a key, checked by promise 6.
    refusals_attributed: u64,
}

impl Coverage {
    fn add(&mut self, other: &Coverage) {
        self.validations += other.validations;
        self.admitted += other.admitted;
        self.under_revoke_ok += other.under_revoke_ok;
        self.under_revoke_bound += other.under_revoke_bound;
        self.under_rotation_ok += other.under_rotation_ok;
        self.under_deletion_or_grace_bound += other.under_deletion_or_grace_bound;
        self.revokes_ok += other.revokes_ok;
        self.revokes_failed_after_d1 += other.revokes_failed_after_d1;
        self.rotations_ok += other.rotations_ok;
        self.rotations_failed += other.rotations_failed;
        self.fills_landed += other.fills_landed;
        self.kv_write_faults += other.kv_write_faults;
        self.expired_denials_read += other.expired_denials_read;
        self.refusals_attributed += other.refusals_attributed;
    }
}

struct World {
    rng: Rng,
    clock: Cell<Millis>,
    /// How slowly this seed's calls follow one another: at 60, the usual pauses of a few
    /// seconds become minutes, so that grants go stale between calls and validations miss.
    pace: Millis,
    faults: Faults,
    /// Off while the keys are created, so that every seed starts from two working keys.
    faults_on: Cell<bool>,
    /// The task being polled, for the trace.
    running: Cell<usize>,
    events: Cell<u64>,
    /// Formatted only when the seed is replayed for a report: formatting is most of the cost.
    trace: Option<RefCell<Vec<String>>>,
    /// `k1.s2` for the second secret of the first key: the trace never shows a hash.
    names: RefCell<HashMap<KeyHash, String>>,
    promises: RefCell<Vec<Promise>>,
    /// (task, `now`) of every validation that started and has not finished.
    validations_in_flight: RefCell<Vec<(usize, Millis)>>,
    violation: RefCell<Option<String>>,
    coverage: RefCell<Coverage>,
}

impl World {
    fn new(seed: u64, tracing: bool) -> World {
        let rng = Rng(Cell::new(seed));
        let faults = Faults {
            kv_write: *rng.pick(&[0, 10, 10, 30]),
            kv_read: *rng.pick(&[0, 0, 5, 20]),
            d1: *rng.pick(&[0, 0, 3]),
        };
        let pace = *rng.pick(&[1, 1, 10, 60]);
        World {
            rng,
            clock: Cell::new(START),
            pace,
            faults,
            faults_on: Cell::new(false),
            running: Cell::new(0),
            events: Cell::new(0),
            trace: tracing.then(|| RefCell::new(Vec::new())),
            names: RefCell::default(),
            promises: RefCell::default(),
            validations_in_flight: RefCell::default(),
            violation: RefCell::default(),
            coverage: RefCell::default(),
        }
    }

    fn now(&self) -> Millis {
        self.clock.get()
    }

    /// Between two steps: mostly the milliseconds of a round trip, sometimes seconds (a fill's
    /// 60 s denial ends), sometimes minutes (grants go stale), rarely an hour (denials expire),
    /// but never so far that a validation in flight gets older than `VALIDATION_MAX_MS`.
    fn advance_clock(&self) {
        let step = match self.rng.below(1000) {
            0..=699 => self.rng.between(0, 5),
            700..=939 => self.rng.between(5, 3_000) * self.pace,
            940..=984 => self.rng.between(3_000, 2 * MINUTE),
            985..=996 => self.rng.between(2 * MINUTE, 8 * MINUTE),
            _ => self.rng.between(55 * MINUTE, 65 * MINUTE),
        };
        let now = self.clock.get();
        let limit = self
            .validations_in_flight
            .borrow()
            .iter()
            .map(|(_, started)| started + VALIDATION_MAX_MS)
            .min()
            .unwrap_or(Millis::MAX);
        self.clock.set((now + step).min(limit.max(now)));
    }

    /// Numbers an event, and records it when the seed is traced.
    fn event(&self, text: impl FnOnce() -> String) -> u64 {
        let number = self.events.get() + 1;
        self.events.set(number);
        if let Some(trace) = &self.trace {
            trace.borrow_mut().push(format!(
                "{number:>5} {:>14} #{:<3} {}",
                at(self.now()),
                self.running.get(),
                text()
            ));
        }
        number
    }

    fn fault(&self, chance: u32, may_apply: bool) -> Fault {
        if !self.faults_on.get() || !self.rng.percent(chance) {
            Fault::None
        } else if may_apply && self.rng.percent(33) {
            Fault::AppliedAnyway
        } else {
            Fault::Refused
        }
    }

    fn name(&self, hash: &KeyHash) -> String {
        self.names
            .borrow()
            .get(hash)
            .cloned()
            .unwrap_or_else(|| "an unknown key".into())
    }

    fn describe(&self, entry: &CacheEntry) -> String {
        match entry {
            CacheEntry::Deny(None) => "deny".into(),
            CacheEntry::Deny(Some(denied)) => format!("deny ({:?})", denied.reason),
            CacheEntry::Grant(Grant {
                scopes,
                valid_until,
                fresh_until,
                ..
            }) => {
                let grace =
                    valid_until.map_or(String::new(), |v| format!(", valid until {}", at(v)));
                format!("grant {scopes} (fresh until {}{grace})", at(*fresh_until))
            }
        }
    }

    fn promise(&self, hash: KeyHash, kind: PromiseKind, since: Since, why: String) {
        self.promises.borrow_mut().push(Promise {
            hash,
            kind,
            since,
            why,
        });
    }

    fn violate(&self, what: String) {
        self.event(|| format!("VIOLATION: {what}"));
        self.violation.borrow_mut().get_or_insert(what);
    }

    fn count(&self, update: impl FnOnce(&mut Coverage)) {
        update(&mut self.coverage.borrow_mut());
    }
}

/// Returns Pending once: the scheduler then runs other tasks, and moves the clock, before the
/// storage operation that awaited it takes effect.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

fn yield_to_scheduler() -> YieldOnce {
    YieldOnce(false)
}

// ---------------------------------------------------------------------------------------------
// D1: each method applies atomically at one step (a rotation as one batch, as D1 runs it)

struct SecretRow {
    tenant: String,
    key_id: Uuid,
    hash: KeyHash,
    valid_until: Option<Millis>,
}

struct FakeD1<'w> {
    world: &'w World,
    keys: RefCell<Vec<(String, ApiKey)>>,
    key_names: RefCell<HashMap<Uuid, String>>,
    secrets: RefCell<Vec<SecretRow>>,
    /// Every secret a key ever had, in D1 or deleted: a revocation ends all of them.
    ever: RefCell<Vec<(Uuid, KeyHash)>>,
    /// The secrets each rotation deleted, by the rotation's new secret.
    deleted_by: RefCell<HashMap<KeyHash, Vec<KeyHash>>>,
    /// The event at which a rotation deleted each deleted secret.
    deleted_at: RefCell<HashMap<KeyHash, u64>>,
    /// The audit log, in the order written; each event is written in the step of its change.
    events: RefCell<Vec<AuditEvent>>,
    /// Every secret a rotation gave an end (a grace deadline or now), deleted since or not.
    given_an_end: RefCell<Vec<KeyHash>>,
}

impl<'w> FakeD1<'w> {
    fn new(world: &'w World) -> FakeD1<'w> {
        FakeD1 {
            world,
            keys: RefCell::default(),
            key_names: RefCell::default(),
            secrets: RefCell::default(),
            ever: RefCell::default(),
            deleted_by: RefCell::default(),
            deleted_at: RefCell::default(),
            events: RefCell::default(),
            given_an_end: RefCell::default(),
        }
    }

    /// Why the audit log does not replay to D1's state of a key, if it does not.
    fn audit_mismatch(&self, id: Uuid) -> Option<String> {
        let key = self.key(acme().as_str(), id)?;
        let name = self.key_name(id);
        let events: Vec<AuditEvent> = self
            .events
            .borrow()
            .iter()
            .filter(|e| e.key_id == id)
            .cloned()
            .collect();
        let count = |action| events.iter().filter(|e| e.action == action).count();
        let rotations = self.every_secret_of(id).len() - 1;
        let revoked = usize::from(key.revoked_at.is_some());
        if count(AuditAction::Created) != 1
            || count(AuditAction::Rotated) != rotations
            || count(AuditAction::Revoked) != revoked
        {
            return Some(format!(
                "{name}: events {:?} for {rotations} rotations and {revoked} revocations",
                events.iter().map(|e| e.action).collect::<Vec<_>>()
            ));
        }
        let details = |e: &AuditEvent| -> serde_json::Value {
            serde_json::from_str(e.details.as_str()).expect("details are JSON")
        };
        let mut scopes = details(&events[0])["scopes"].clone();
        for event in events.iter().filter(|e| e.action == AuditAction::Updated) {
            let change = &details(event)["scopes"];
            if change["from"] != scopes {
                return Some(format!(
                    "{name}: an update from {} when it was {scopes}",
                    change["from"]
                ));
            }
            scopes = change["to"].clone();
        }
        (scopes != key.scopes.to_string())
            .then(|| format!("{name}: the log replays to {scopes}, D1 has {}", key.scopes))
    }

    fn key(&self, tenant: &str, id: Uuid) -> Option<ApiKey> {
        self.keys
            .borrow()
            .iter()
            .find(|(t, k)| t == tenant && k.id == id)
            .map(|(_, k)| k.clone())
    }

    fn key_name(&self, id: Uuid) -> String {
        self.key_names
            .borrow()
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    fn stored(&self, row: &SecretRow) -> StoredSecret {
        let key = self.key(&row.tenant, row.key_id).expect("a secret's key");
        StoredSecret {
            key_id: key.id,
            tenant: row.tenant.clone(),
            scopes: key.scopes,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            valid_until: row.valid_until,
            allowed_ips: key.allowed_ips.clone(),
        }
    }

    fn with_key<R>(
        &self,
        tenant: &Tenant,
        id: Uuid,
        f: impl FnOnce(&mut ApiKey) -> R,
    ) -> Option<R> {
        self.keys
            .borrow_mut()
            .iter_mut()
            .find(|(t, k)| t == tenant.as_str() && k.id == id)
            .map(|(_, k)| f(k))
    }

    /// Stores a new secret and names it for the trace.
    fn add_secret(&self, tenant: &Tenant, id: Uuid, hash: &KeyHash) {
        let count = self.ever.borrow().iter().filter(|(k, _)| *k == id).count();
        let name = format!("{}.s{}", self.key_name(id), count + 1);
        self.world.names.borrow_mut().insert(hash.clone(), name);
        self.ever.borrow_mut().push((id, hash.clone()));
        self.secrets.borrow_mut().push(SecretRow {
            tenant: tenant.to_string(),
            key_id: id,
            hash: hash.clone(),
            valid_until: None,
        });
    }

    /// Whether a rotation gave this secret an end (it may since have been deleted).
    fn ended_by_rotation(&self, hash: &KeyHash) -> bool {
        self.given_an_end.borrow().contains(hash)
    }

    /// What D1 holds for a secret now, for a violation's report.
    fn state_of(&self, hash: &KeyHash) -> String {
        let secrets = self.secrets.borrow();
        match secrets.iter().find(|s| &s.hash == hash) {
            Some(row) if self.stored(row).revoked_at.is_some() => "revoked".into(),
            Some(_) => "active".into(),
            None => match self.deleted_at.borrow().get(hash) {
                Some(event) => format!("deleted by the rotation at event {event}"),
                None => "never stored".into(),
            },
        }
    }

    fn every_secret_of(&self, id: Uuid) -> Vec<KeyHash> {
        self.ever
            .borrow()
            .iter()
            .filter(|(k, _)| *k == id)
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// Every call: yield, then maybe fail before touching anything.
    async fn begin(&self, call: &str, changes: bool) -> Result<Fault, StorageError> {
        yield_to_scheduler().await;
        let fault = self.world.fault(self.world.faults.d1, changes);
        if fault == Fault::Refused {
            self.world
                .event(|| format!("D1 {call}: FAILED, nothing changed"));
            return Err(StorageError(format!("D1 {call}: injected fault")));
        }
        Ok(fault)
    }

    /// A change that was saved, but whose answer is lost, is an error for the caller.
    fn answer<T>(&self, call: &str, fault: Fault, value: T) -> Result<T, StorageError> {
        if fault == Fault::AppliedAnyway {
            self.world
                .event(|| format!("D1 {call}: saved, but the call FAILED"));
            return Err(StorageError(format!(
                "D1 {call}: injected fault after commit"
            )));
        }
        Ok(value)
    }
}

impl KeyStore for FakeD1<'_> {
    async fn insert(
        &self,
        tenant: &Tenant,
        key: &ApiKey,
        hash: &KeyHash,
        event: &AuditEvent,
    ) -> Result<(), StorageError> {
        let fault = self.begin("insert", true).await?;
        self.events.borrow_mut().push(event.clone());
        let name = format!("k{}", self.keys.borrow().len() + 1);
        self.key_names.borrow_mut().insert(key.id, name);
        self.keys
            .borrow_mut()
            .push((tenant.to_string(), key.clone()));
        self.add_secret(tenant, key.id, hash);
        self.answer("insert", fault, ())
    }

    async fn list(
        &self,
        tenant: &Tenant,
        limit: u32,
        _after: Option<Cursor>,
    ) -> Result<Vec<ApiKey>, StorageError> {
        self.begin("list", false).await?;
        Ok(self
            .keys
            .borrow()
            .iter()
            .filter(|(t, _)| t == tenant.as_str())
            .map(|(_, k)| k.clone())
            .take(limit as usize)
            .collect())
    }

    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Option<ApiKey>, StorageError> {
        self.begin("get", false).await?;
        Ok(self.key(tenant.as_str(), id))
    }

    async fn update(
        &self,
        tenant: &Tenant,
        before: &ApiKey,
        change: &KeyChange,
        event: &AuditEvent,
    ) -> Result<bool, StorageError> {
        let fault = self.begin("update", true).await?;
        let id = before.id;
        let changed = self
            .with_key(tenant, id, |k| {
                // D1's UPDATE condition: active and as the service read it.
                if k.revoked_at.is_some()
                    || k.name != before.name
                    || k.scopes != before.scopes
                    || k.allowed_ips != before.allowed_ips
                {
                    return false;
                }
                *k = k.changed(change);
                true
            })
            .unwrap_or(false);
        if changed {
            self.events.borrow_mut().push(event.clone());
        }
        self.world.event(|| {
            format!(
                "D1 update {}: {}",
                self.key_name(id),
                if changed {
                    "scopes changed"
                } else {
                    "refused, revoked or changed since read"
                }
            )
        });
        self.answer("update", fault, changed)
    }

    async fn revoke(
        &self,
        tenant: &Tenant,
        id: Uuid,
        event: &AuditEvent,
    ) -> Result<(), StorageError> {
        let fault = self.begin("revoke", true).await?;
        let first = self
            .with_key(tenant, id, |k| {
                let first = k.revoked_at.is_none();
                k.revoked_at = k.revoked_at.or(Some(event.at));
                first
            })
            .unwrap_or(false);
        if first {
            self.events.borrow_mut().push(event.clone());
        }
        let change = self.world.event(|| {
            format!(
                "D1 revoke {}: {}",
                self.key_name(id),
                if first { "revoked" } else { "already revoked" }
            )
        });
        if first {
            // Promise 2: every grant of a secret of this key comes from a D1 read before this
            // step, by a call whose `now` was at or before it.
            let bound = self.world.now() + MANAGED_GRANT_FRESH_MS;
            for row in self.secrets.borrow().iter().filter(|s| s.key_id == id) {
                self.world.promise(
                    row.hash.clone(),
                    PromiseKind::RevokedInD1,
                    Since::Time(bound),
                    format!(
                        "its key was revoked in D1 at event {change}, and the stated bound \
                         (MANAGED_GRANT_FRESH_MS later) ended at {}",
                        at(bound)
                    ),
                );
            }
        }
        self.answer("revoke", fault, ())
    }

    async fn rotate(
        &self,
        tenant: &Tenant,
        id: Uuid,
        new_hash: &KeyHash,
        _new_prefix: &str,
        old_valid_until: Millis,
        event: &AuditEvent,
    ) -> Result<bool, StorageError> {
        let fault = self.begin("rotate", true).await?;
        if self.with_key(tenant, id, |k| k.revoked_at.is_none()) != Some(true) {
            self.world
                .event(|| format!("D1 rotate {}: refused, revoked", self.key_name(id)));
            return self.answer("rotate", fault, false);
        }
        let now = event.at;
        self.events.borrow_mut().push(event.clone());
        // The statements of `store::d1`'s batch: the current secret gets the grace deadline, an
        // older one ends now; the new secret is added. Ended secrets stay until `forget`.
        let mut graced = Vec::new();
        let mut ended = Vec::new();
        {
            let mut secrets = self.secrets.borrow_mut();
            for row in secrets.iter_mut().filter(|s| s.key_id == id) {
                self.given_an_end.borrow_mut().push(row.hash.clone());
                row.valid_until = Some(match row.valid_until {
                    None => {
                        graced.push(row.hash.clone());
                        old_valid_until
                    }
                    Some(until) => until.min(now),
                });
            }
            ended.extend(
                secrets
                    .iter()
                    .filter(|s| s.key_id == id && s.valid_until.is_some_and(|until| until <= now))
                    .map(|s| s.hash.clone()),
            );
        }
        self.add_secret(tenant, id, new_hash);
        self.deleted_by
            .borrow_mut()
            .insert(new_hash.clone(), ended.clone());
        let change = self.world.event(|| {
            let names = |hashes: &[KeyHash]| {
                hashes
                    .iter()
                    .map(|h| self.world.name(h))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            format!(
                "D1 rotate {}: new {}, ended [{}], in grace until {} [{}]",
                self.key_name(id),
                self.world.name(new_hash),
                names(&ended),
                at(old_valid_until),
                names(
                    &graced
                        .iter()
                        .filter(|h| !ended.contains(h))
                        .cloned()
                        .collect::<Vec<_>>()
                ),
            )
        });
        for hash in &ended {
            self.deleted_at.borrow_mut().insert(hash.clone(), change);
        }
        // Promise 4: grants read before this step are fresh until at most the bound; those read
        // after carry the deadline, or find the secret gone.
        let bound = self.world.now() + MANAGED_GRANT_FRESH_MS;
        for hash in &ended {
            self.world.promise(
                hash.clone(),
                PromiseKind::DeletedOrGracedInD1,
                Since::Time(bound),
                format!(
                    "it was deleted in D1 by the rotation at event {change}, and the stated \
                     bound ended at {}",
                    at(bound)
                ),
            );
        }
        for hash in graced.iter().filter(|h| !ended.contains(h)) {
            let end = bound.max(old_valid_until);
            self.world.promise(
                hash.clone(),
                PromiseKind::DeletedOrGracedInD1,
                Since::Time(end),
                format!(
                    "the rotation at event {change} gave it a grace until {}, and the stated \
                     bound ended at {}",
                    at(old_valid_until),
                    at(bound)
                ),
            );
        }
        self.answer("rotate", fault, true)
    }

    async fn audit_events(
        &self,
        tenant: &Tenant,
        filter: EventFilter,
        limit: u32,
        _after: Option<Cursor>,
    ) -> Result<Vec<AuditEvent>, StorageError> {
        self.begin("audit_events", false).await?;
        Ok(self
            .events
            .borrow()
            .iter()
            .rev()
            .filter(|e| tenant == &acme() && filter.matches(e))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn forget(
        &self,
        tenant: &Tenant,
        id: Uuid,
        hashes: &[KeyHash],
        now: Millis,
    ) -> Result<(), StorageError> {
        let fault = self.begin("forget", true).await?;
        let mut forgotten = Vec::new();
        self.secrets.borrow_mut().retain(|s| {
            let gone = s.tenant == tenant.as_str()
                && s.key_id == id
                && hashes.contains(&s.hash)
                && s.valid_until.is_some_and(|until| until <= now);
            if gone {
                forgotten.push(s.hash.clone());
            }
            !gone
        });
        self.world.event(|| {
            let names: Vec<String> = forgotten.iter().map(|h| self.world.name(h)).collect();
            format!(
                "D1 forget {}: deleted [{}]",
                self.key_name(id),
                names.join(" ")
            )
        });
        self.answer("forget", fault, ())
    }

    async fn secrets_of(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError> {
        self.begin("secrets_of", false).await?;
        // Insertion order rather than D1's ORDER BY key_hash: the hashes are random, and the
        // order of the writes must not depend on them for a seed to replay.
        let secrets = self.secrets.borrow();
        Ok(secrets
            .iter()
            .filter(|s| s.tenant == tenant.as_str() && s.key_id == id)
            .map(|s| (s.hash.clone(), self.stored(s)))
            .collect())
    }

    async fn find_secret(&self, hash: &KeyHash) -> Result<Option<StoredSecret>, StorageError> {
        self.begin("find_secret", false).await?;
        let secrets = self.secrets.borrow();
        let found = secrets
            .iter()
            .find(|s| &s.hash == hash)
            .map(|s| self.stored(s));
        self.world.event(|| {
            format!(
                "D1 find {}: {}",
                self.world.name(hash),
                match &found {
                    None => "absent".to_string(),
                    Some(s) if s.revoked_at.is_some() => "revoked".to_string(),
                    Some(s) => format!(
                        "active, {}{}",
                        s.scopes,
                        s.valid_until
                            .map_or(String::new(), |v| format!(", valid until {}", at(v)))
                    ),
                }
            )
        });
        Ok(found)
    }
}

// ---------------------------------------------------------------------------------------------
// KV: (entry, expiry) per place and hash; the last write wins, value and time to live alike

/// One KV entry: its name (place and hash), value and expiry.
struct KvEntry {
    place: Place,
    hash: KeyHash,
    entry: CacheEntry,
    expires_at: Millis,
}

struct FakeKv<'w> {
    world: &'w World,
    /// A few dozen entries at most: a list is cheaper than hashing 64-character names.
    entries: RefCell<Vec<KvEntry>>,
}

impl FakeKv<'_> {
    fn find(entries: &[KvEntry], place: Place, hash: &KeyHash) -> Option<usize> {
        entries
            .iter()
            .position(|e| e.place == place && &e.hash == hash)
    }
}

impl KeyCache for FakeKv<'_> {
    async fn read(&self, hash: &KeyHash) -> Result<Cached, StorageError> {
        yield_to_scheduler().await;
        let world = self.world;
        if world.fault(world.faults.kv_read, false) != Fault::None {
            world.event(|| format!("KV read {}: FAILED", world.name(hash)));
            return Err(StorageError("KV read: injected fault".into()));
        }
        let now = world.now();
        let entries = self.entries.borrow();
        let stored = |place| Self::find(&entries, place, hash).map(|i| &entries[i]);
        let live = |place| {
            stored(place)
                .filter(|e| e.expires_at > now)
                .map(|e| e.entry.clone())
        };
        if stored(Place::Denied).is_some_and(|e| e.expires_at <= now) {
            world.count(|c| c.expired_denials_read += 1);
        }
        let cached = Cached {
            denied: live(Place::Denied),
            managed: live(Place::Managed),
            filled: live(Place::Filled),
        };
        world.event(|| {
            let show = |entry: &Option<CacheEntry>| {
                entry
                    .as_ref()
                    .map_or("-".to_string(), |e| world.describe(e))
            };
            format!(
                "KV read {}: denied {} | managed {} | filled {}",
                world.name(hash),
                show(&cached.denied),
                show(&cached.managed),
                show(&cached.filled)
            )
        });
        Ok(cached)
    }

    async fn write(&self, write: &CacheWrite) -> Result<(), StorageError> {
        yield_to_scheduler().await;
        let world = self.world;
        let fault = world.fault(world.faults.kv_write, true);
        if fault != Fault::Refused {
            let written = KvEntry {
                place: write.place,
                hash: write.hash.clone(),
                entry: write.entry.clone(),
                expires_at: world.now() + write.ttl_seconds as Millis * 1000,
            };
            let mut entries = self.entries.borrow_mut();
            match Self::find(&entries, write.place, &write.hash) {
                Some(i) => entries[i] = written,
                None => entries.push(written),
            }
        }
        world.event(|| {
            format!(
                "KV write {:?} {}: {} for {} s{}",
                write.place,
                world.name(&write.hash),
                world.describe(&write.entry),
                write.ttl_seconds,
                match fault {
                    Fault::None => "",
                    Fault::Refused => ": FAILED, not written",
                    Fault::AppliedAnyway => ": written, but FAILED for the caller",
                }
            )
        });
        if fault == Fault::None {
            Ok(())
        } else {
            world.count(|c| c.kv_write_faults += 1);
            Err(StorageError("KV write: injected fault".into()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tasks and the checks

/// A key the model created, and what it knows of it.
struct ModelKey {
    id: Uuid,
    name: String,
    expires_at: Option<Millis>,
}

/// A secret the model can present: one returned by a creation or a successful rotation (a
/// failed rotation's new secret was never shown to anyone).
struct KnownSecret {
    key: usize,
    plain: String,
    hash: KeyHash,
    name: String,
}

/// What a validation presents, and for which tenant.
#[derive(Clone)]
struct Presented {
    plain: String,
    hash: KeyHash,
    name: String,
    /// None for a well-formed key that no one issued.
    key: Option<usize>,
    tenant: Tenant,
}

type Task<'m> = Pin<Box<dyn Future<Output = ()> + 'm>>;

struct Model<'m> {
    world: &'m World,
    d1: &'m FakeD1<'m>,
    kv: &'m FakeKv<'m>,
    keys: Vec<ModelKey>,
    known: RefCell<Vec<KnownSecret>>,
    /// Fills that validations handed back, for the scheduler to turn into tasks.
    fills: RefCell<Vec<(usize, CacheWrite)>>,
}

fn acme() -> Tenant {
    Tenant::parse("acme").expect("a tenant")
}

/// Runs a future to its end with no other task: only for setting up a seed.
fn run_alone<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            return output;
        }
    }
}

impl<'m> Model<'m> {
    /// Two keys: k1 never expires, k2 expires within the run.
    fn new(world: &'m World, d1: &'m FakeD1<'m>, kv: &'m FakeKv<'m>) -> Model<'m> {
        let service = Keys {
            store: d1,
            cache: kv,
        };
        let mut keys = Vec::new();
        let mut known = Vec::new();
        for (index, expires_at) in [None, Some(START + world.rng.between(2, 40) * MINUTE)]
            .into_iter()
            .enumerate()
        {
            let request = NewKey {
                name: format!("key {index}"),
                scopes: Scopes::parse("read,write").expect("scopes"),
                expires_at,
                allowed_ips: None,
            };
            let (record, plain) =
                run_alone(service.create(&acme(), request, &model_actor(), START))
                    .expect("faults are off while the keys are created");
            keys.push(ModelKey {
                id: record.id,
                name: d1.key_name(record.id),
                expires_at,
            });
            known.push(KnownSecret {
                key: index,
                plain: plain.reveal().to_string(),
                hash: plain.hash(),
                name: world.name(&plain.hash()),
            });
        }
        Model {
            world,
            d1,
            kv,
            keys,
            known: RefCell::new(known),
            fills: RefCell::default(),
        }
    }

    fn service(&self) -> Keys<'m, FakeD1<'m>, FakeKv<'m>> {
        Keys {
            store: self.d1,
            cache: self.kv,
        }
    }

    /// One operation chosen at random, as tasks numbered from `task` that start when first
    /// polled. A validation comes as a burst of requests presenting the same secret, as from a
    /// busy integration: concurrent misses are what make concurrent fills.
    fn random_operation(&self, task: usize) -> Vec<Task<'_>> {
        let rng = &self.world.rng;
        let key = rng.below(self.keys.len());
        if rng.percent(55) {
            let burst = *rng.pick(&[1, 1, 2, 3, 5]);
            let presented = self.presented();
            return (0..burst)
                .map(|i| self.validation(task + i, presented.clone()))
                .collect();
        }
        vec![match rng.below(45) {
            0..=6 => self.revocation(task, key),
            7..=26 => {
                let grace_seconds = match rng.below(10) {
                    0..=3 => 0,
                    4..=7 => rng.between(1, 90) as u64,
                    _ => rng.between(600, 1800) as u64,
                };
                self.rotation(task, key, grace_seconds)
            }
            _ => {
                let scopes = *rng.pick(&["read", "write", "read,write", "admin"]);
                self.scope_change(key, scopes)
            }
        }]
    }

    /// Mostly a key's newest secret, often an older one, sometimes a guess or another tenant.
    fn presented(&self) -> Presented {
        let rng = &self.world.rng;
        let known = self.known.borrow();
        let secret = match rng.below(10) {
            0..=5 => {
                let key = rng.below(self.keys.len());
                known.iter().rev().find(|s| s.key == key).expect("a secret")
            }
            _ => rng.pick(&known),
        };
        let (plain, hash, name) = (
            secret.plain.clone(),
            secret.hash.clone(),
            secret.name.clone(),
        );
        match rng.below(20) {
            0 => {
                let guess = "rk_live_0123456789abcdef0123456789abcdef";
                Presented {
                    plain: guess.into(),
                    hash: PlainKey::parse(guess).expect("a key").hash(),
                    name: "a guessed key".into(),
                    key: None,
                    tenant: acme(),
                }
            }
            1 => Presented {
                plain,
                hash,
                name,
                key: Some(secret.key),
                tenant: Tenant::parse("globex").expect("a tenant"),
            },
            _ => Presented {
                plain,
                hash,
                name,
                key: Some(secret.key),
                tenant: acme(),
            },
        }
    }

    fn validation(&self, task: usize, presented: Presented) -> Task<'_> {
        let blocked = self.world.rng.percent(10);
        Box::pin(async move {
            let world = self.world;
            let now = world.now();
            let started = world.event(|| {
                format!(
                    "validate {} for {}{}",
                    presented.name,
                    presented.tenant,
                    if blocked { " (client blocked)" } else { "" }
                )
            });
            world.count(|c| c.validations += 1);
            world.validations_in_flight.borrow_mut().push((task, now));
            let result = self
                .service()
                .validate(&presented.plain, &presented.tenant, now, blocked)
                .await;
            world
                .validations_in_flight
                .borrow_mut()
                .retain(|(other, _)| *other != task);
            let validation = match result {
                Ok(validation) => validation,
                Err(error) => {
                    world.event(|| format!("validate {}: {error:?}", presented.name));
                    return;
                }
            };
            world.event(|| {
                format!(
                    "validate {}: {} ({})",
                    presented.name,
                    if validation.admitted.is_some() {
                        "ADMITTED"
                    } else {
                        "refused"
                    },
                    validation.cache.as_str()
                )
            });
            self.check(&presented, validation.admitted.as_ref(), now, started);
            if let Some(refused) = validation.refused {
                self.check_refusal(&presented, refused, now, started);
            }
            if let Some(fill) = validation.fill {
                self.fills.borrow_mut().push((task, fill));
            }
        })
    }

    /// The promises about the presented secret that bind a validation that started at `now`,
    /// as event `started`.
    fn check(&self, presented: &Presented, admitted: Option<&Admitted>, now: Millis, started: u64) {
        let world = self.world;
        let hash = &presented.hash;
        let mut binding = Vec::new();
        for promise in world.promises.borrow().iter().filter(|p| &p.hash == hash) {
            let binds = match promise.since {
                Since::Event(event) => started > event,
                Since::Time(time) => now >= time,
            };
            if binds {
                binding.push(promise.why.clone());
                world.count(|c| match promise.kind {
                    PromiseKind::RevokeReturnedOk => c.under_revoke_ok += 1,
                    PromiseKind::RevokedInD1 => c.under_revoke_bound += 1,
                    PromiseKind::RotationReturnedOk => c.under_rotation_ok += 1,
                    PromiseKind::DeletedOrGracedInD1 => c.under_deletion_or_grace_bound += 1,
                });
            }
        }
        let Some(admitted) = admitted else {
            return;
        };
        world.count(|c| c.admitted += 1);
        let who = format!(
            "the validation of {} (in D1 now: {}) that started at {} (event {started})",
            presented.name,
            self.d1.state_of(hash),
            at(now)
        );
        let Some(key) = presented.key.map(|k| &self.keys[k]) else {
            return world.violate(format!("{who} admitted a key that no one issued"));
        };
        if presented.tenant != acme() {
            world.violate(format!("{who} admitted it for tenant {}", presented.tenant));
        } else if admitted.key_id != key.id {
            world.violate(format!("{who} admitted it as another key"));
        } else if key.expires_at.is_some_and(|expiry| now >= expiry) {
            world.violate(format!("{who} admitted it, but {} expired", key.name));
        } else if let Some(why) = binding.first() {
            world.violate(format!("{who} admitted it, but {why}"));
        }
    }

    /// Promise 6: the key a refusal is counted for.
    fn check_refusal(&self, presented: &Presented, refused: RefusedKey, now: Millis, started: u64) {
        let world = self.world;
        world.count(|c| c.refusals_attributed += 1);
        let who = format!(
            "the validation of {} (in D1 now: {}) that started at {} (event {started}) refused it \
             as {:?}",
            presented.name,
            self.d1.state_of(&presented.hash),
            at(now),
            refused.reason
        );
        let Some(key) = presented.key.map(|k| &self.keys[k]) else {
            return world.violate(format!("{who}, naming a key no one issued"));
        };
        let stored = self.d1.key(acme().as_str(), key.id);
        let borne_out = match refused.reason {
            DenyReason::Revoked => stored.is_some_and(|k| k.revoked_at.is_some()),
            // By the time of the refusal: a validation may read a denial that a later one
            // wrote, and expiry, like every reason, is final.
            DenyReason::Expired => key.expires_at.is_some_and(|expiry| expiry <= world.now()),
            DenyReason::RotatedOut => self.d1.ended_by_rotation(&presented.hash),
        };
        if presented.tenant != acme() {
            world.violate(format!(
                "{who}, counting it for tenant {}",
                presented.tenant
            ));
        } else if refused.key_id != key.id {
            world.violate(format!("{who}, counting it for another key"));
        } else if !borne_out {
            world.violate(format!("{who}, which D1 does not bear out"));
        }
    }

    fn revocation(&self, task: usize, key: usize) -> Task<'_> {
        Box::pin(async move {
            let world = self.world;
            let key = &self.keys[key];
            let now = world.now();
            world.event(|| format!("revoke {}", key.name));
            let result = self
                .service()
                .revoke(&acme(), key.id, &model_actor(), now)
                .await;
            let returned = world.event(|| format!("revoke {} returned {result:?}", key.name));
            let revoked_in_d1 = self
                .d1
                .key(acme().as_str(), key.id)
                .is_some_and(|k| k.revoked_at.is_some());
            match result {
                // Promise 1.
                Ok(()) => {
                    world.count(|c| c.revokes_ok += 1);
                    for hash in self.d1.every_secret_of(key.id) {
                        world.promise(
                            hash,
                            PromiseKind::RevokeReturnedOk,
                            Since::Event(returned),
                            format!(
                                "revoke (task #{task}) of {} returned Ok at event {returned}",
                                key.name
                            ),
                        );
                    }
                }
                Err(_) if revoked_in_d1 => world.count(|c| c.revokes_failed_after_d1 += 1),
                Err(_) => {}
            }
        })
    }

    fn rotation(&self, task: usize, key: usize, grace_seconds: u64) -> Task<'_> {
        Box::pin(async move {
            let world = self.world;
            let model_key = &self.keys[key];
            let now = world.now();
            world.event(|| format!("rotate {} with {grace_seconds} s grace", model_key.name));
            let result = self
                .service()
                .rotate(&acme(), model_key.id, grace_seconds, &model_actor(), now)
                .await;
            let (_, plain) = match result {
                Ok(rotated) => rotated,
                Err(error) => {
                    world.count(|c| c.rotations_failed += 1);
                    world.event(|| format!("rotate {} returned {error:?}", model_key.name));
                    return;
                }
            };
            let new_hash = plain.hash();
            let returned = world.event(|| {
                format!(
                    "rotate {} returned Ok: {}",
                    model_key.name,
                    world.name(&new_hash)
                )
            });
            world.count(|c| c.rotations_ok += 1);
            // Promise 3.
            let deleted = self
                .d1
                .deleted_by
                .borrow()
                .get(&new_hash)
                .cloned()
                .unwrap_or_default();
            for hash in deleted {
                world.promise(
                    hash,
                    PromiseKind::RotationReturnedOk,
                    Since::Event(returned),
                    format!(
                        "the rotation (task #{task}, {grace_seconds} s grace) that deleted it \
                         returned Ok at event {returned}"
                    ),
                );
            }
            self.known.borrow_mut().push(KnownSecret {
                key,
                plain: plain.reveal().to_string(),
                name: world.name(&new_hash),
                hash: new_hash,
            });
        })
    }

    fn scope_change(&self, key: usize, scopes: &'static str) -> Task<'_> {
        Box::pin(async move {
            let world = self.world;
            let key = &self.keys[key];
            let now = world.now();
            world.event(|| format!("change {} to {scopes}", key.name));
            let change = KeyChange {
                name: None,
                scopes: Some(Scopes::parse(scopes).expect("scopes")),
                allowed_ips: None,
            };
            let result = self
                .service()
                .update(&acme(), key.id, change, &model_actor(), now)
                .await;
            world.event(|| {
                format!(
                    "change {} returned {}",
                    key.name,
                    match &result {
                        Ok(_) => "Ok".to_string(),
                        Err(error) => format!("{error:?}"),
                    }
                )
            });
        })
    }

    /// A validation's fill, run whenever the scheduler gets to it: the caller runs it off the
    /// response path, so it may land long after other calls.
    fn fill(&self, validation: usize, fill: CacheWrite) -> Task<'_> {
        Box::pin(async move {
            self.world
                .event(|| format!("fill of validation #{validation} starts"));
            if self.kv.write(&fill).await.is_ok() {
                self.world.count(|c| c.fills_landed += 1);
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The scheduler

struct SeedRun {
    violation: Option<String>,
    trace: Vec<String>,
    coverage: Coverage,
    faults: Faults,
}

/// Plays one seed: starts `OPERATIONS_PER_SEED` operations at random moments, and at each step
/// moves the clock and polls one task chosen at random, until every task is done or a promise
/// is broken.
fn run_seed(seed: u64, tracing: bool) -> SeedRun {
    let world = World::new(seed, tracing);
    let d1 = FakeD1::new(&world);
    let kv = FakeKv {
        world: &world,
        entries: RefCell::default(),
    };
    let model = Model::new(&world, &d1, &kv);
    world.faults_on.set(true);
    world.event(|| {
        format!(
            "seed {seed}: faults {:?}, {} expires at {}",
            world.faults,
            model.keys[1].name,
            at(model.keys[1].expires_at.unwrap_or_default())
        )
    });

    let mut tasks: Vec<(usize, Task<'_>)> = Vec::new();
    let mut next_task = 1;
    let mut started = 0;
    while (started < OPERATIONS_PER_SEED || !tasks.is_empty()) && world.violation.borrow().is_none()
    {
        world.advance_clock();
        // Some callers die before running their fill (the isolate is evicted).
        for (validation, fill) in model.fills.take() {
            if world.rng.percent(95) {
                tasks.push((next_task, model.fill(validation, fill)));
                next_task += 1;
            }
        }
        if started < OPERATIONS_PER_SEED && (tasks.is_empty() || world.rng.percent(20)) {
            for task in model.random_operation(next_task) {
                tasks.push((next_task, task));
                next_task += 1;
            }
            started += 1;
            continue;
        }
        let index = world.rng.below(tasks.len());
        world.running.set(tasks[index].0);
        let poll = tasks[index]
            .1
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        if poll.is_ready() {
            // `remove`, not `swap_remove`: the order of the others stays the order they started.
            drop(tasks.remove(index));
        }
    }
    if world.violation.borrow().is_none() {
        for key in &model.keys {
            if let Some(mismatch) = d1.audit_mismatch(key.id) {
                world.violate(format!("the audit log does not match D1: {mismatch}"));
            }
        }
    }
    let coverage = world.coverage.take();
    SeedRun {
        violation: world.violation.take(),
        trace: world.trace.as_ref().map(RefCell::take).unwrap_or_default(),
        coverage,
        faults: world.faults,
    }
}

fn model_actor() -> Actor {
    Actor::new("model".into(), None)
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

/// The report of a failing seed: its violation, then its whole interleaving.
fn report(seed: u64, run: &SeedRun) -> String {
    format!(
        "seed {seed} (faults {:?}): {}\n\
         re-run it with CACHE_MODEL_SEED={seed} cargo test --lib model -- --nocapture\n\
         trace (event, model time, task, step):\n{}",
        run.faults,
        run.violation.as_deref().unwrap_or("no violation"),
        run.trace.join("\n")
    )
}

#[test]
fn revocations_and_rotations_hold_under_any_interleaving_of_cache_operations() {
    if let Some(seed) = env_number("CACHE_MODEL_SEED") {
        let run = run_seed(seed, true);
        println!("{}", report(seed, &run));
        assert!(run.violation.is_none(), "seed {seed} broke a promise");
        return;
    }
    let seeds = env_number("CACHE_MODEL_SEEDS").unwrap_or(DEFAULT_SEEDS);
    // Seeds are independent: each thread plays every n-th one.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) as u64;
    let (mut coverage, mut failing) = (Coverage::default(), Vec::new());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || {
                    let (mut coverage, mut failing) = (Coverage::default(), Vec::new());
                    for seed in (first..seeds).step_by(threads as usize) {
                        let run = run_seed(seed, false);
                        coverage.add(&run.coverage);
                        if let Some(violation) = run.violation {
                            failing.push((seed, violation));
                        }
                    }
                    (coverage, failing)
                })
            })
            .collect();
        for worker in workers {
            let (part, seeds) = worker.join().expect("a model thread");
            coverage.add(&part);
            failing.extend(seeds);
        }
    });
    failing.sort_unstable_by_key(|(seed, _)| *seed);
    println!("{seeds} seeds: {coverage:#?}");
    if let Some((first, violation)) = failing.first() {
        // The replay traces the same run: nothing in the model depends on the random key
        // bytes, the thread or the wall clock.
        let replay = run_seed(*first, true);
        assert_eq!(
            replay.violation.as_ref(),
            Some(violation),
            "seed {first} replayed differently"
        );
        let listed: Vec<String> = failing
            .iter()
            .take(10)
            .map(|(seed, violation)| format!("  seed {seed}: {violation}"))
            .collect();
        panic!(
            "{} of {seeds} seeds broke a promise; the first ones:\n{}\n\n{}",
            failing.len(),
            listed.join("\n"),
            report(*first, &replay)
        );
    }
    // The model checks nothing unless validations start under each kind of promise.
    if seeds >= DEFAULT_SEEDS {
        for (kind, count) in [
            ("revoke returned Ok", coverage.under_revoke_ok),
            ("revocation's bound", coverage.under_revoke_bound),
            ("rotation returned Ok", coverage.under_rotation_ok),
            (
                "deletion or grace bound",
                coverage.under_deletion_or_grace_bound,
            ),
            (
                "revoke failed after its D1 change",
                coverage.revokes_failed_after_d1,
            ),
            ("a fill landed", coverage.fills_landed),
            (
                "a denial read past its time to live",
                coverage.expired_denials_read,
            ),
            ("a refusal named its key", coverage.refusals_attributed),
        ] {
            assert!(count >= 100, "only {count} times: {kind}");
        }
    }
}
