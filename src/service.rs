//! The use cases: create, list, read, change, revoke and rotate keys, read the audit log, and
//! validate a presented key. Written against two traits so that the logic (cache fence, grace
//! windows, negative cache) is tested natively with in-memory fakes; `store::d1` and `cache::kv`
//! implement them on the real bindings. Usage counting is not here: it never touches D1 on a
//! request's path (`domain::usage`, and the queue's consumer in `usage_queue`).
//!
//! Cache design (README, "Cache"). An entry for a secret can live in three places, and a reader
//! takes the first live one in this order:
//! 1. *denied*: final denials written by management calls (revocation, a secret rotated out).
//!    Nothing else writes there, so no later write can shorten or undo a revocation.
//! 2. *managed*: the entry a management call wrote from D1's state after its change, so that a
//!    narrowed scope applies at once at this location, ahead of any older fill.
//! 3. *filled*: what a validation found in D1 after a miss (grants, and short negative entries
//!    for unknown keys).
//!
//! Every grant carries the time it stops being fresh, a bounded while after the D1 read that
//! justified it, so that a grant that nothing overwrites (a failed KV write) ends by itself.
//! A denial is final: unknown, revoked and rotated-out secrets never become valid again.
//!
//! Audit log. Every change to a key is written together with its event, in one call of the
//! store and so in one D1 transaction: there is never a change without its event or an event
//! without its change. A call that changes nothing (a PATCH to the values the key already has,
//! a repeated revocation, a change refused because the key is revoked) records nothing.

use crate::domain::{
    audit::{self, Actor, AuditAction, AuditEvent, Details, EventFilter},
    cache_entry::{
        Admitted, CacheEntry, RefusedKey, StoredSecret, GRANT_FRESH_MS, MANAGED_GRANT_FRESH_MS,
    },
    cursor::Cursor,
    key::{KeyHash, PlainKey},
    model::ApiKey,
    request_body::{KeyChange, NewKey},
    tenant::Tenant,
    time::Millis,
};
use crate::error::AppError;
use uuid::Uuid;

/// A failure of D1 or KV, with a description for the log (never for a response body).
#[derive(Debug, Clone, PartialEq)]
pub struct StorageError(pub String);

impl From<StorageError> for AppError {
    fn from(error: StorageError) -> AppError {
        AppError::Unavailable(error.0)
    }
}

/// The source of truth. Every method is bound by tenant except the lookup by hash, whose
/// result carries the tenant for the caller to check. Each method that changes a key takes the
/// change's audit event and writes both in one transaction, or neither.
#[allow(async_fn_in_trait)]
pub trait KeyStore {
    async fn insert(
        &self,
        tenant: &Tenant,
        key: &ApiKey,
        hash: &KeyHash,
        event: &AuditEvent,
    ) -> Result<(), StorageError>;
    /// Newest first, starting after `after`, at most `limit` keys.
    async fn list(
        &self,
        tenant: &Tenant,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Vec<ApiKey>, StorageError>;
    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Option<ApiKey>, StorageError>;
    /// Applies the change to the key `before` describes, with its event, if the key is not
    /// revoked and its name and scopes are still `before`'s: the event's `from` values are then
    /// exact even when two changes race. False, with nothing written, otherwise.
    async fn update(
        &self,
        tenant: &Tenant,
        before: &ApiKey,
        change: &KeyChange,
        event: &AuditEvent,
    ) -> Result<bool, StorageError>;
    /// Marks the key revoked at the event's time, with its event. A key that is already revoked
    /// keeps its first revocation time, and no event is written.
    async fn revoke(
        &self,
        tenant: &Tenant,
        id: Uuid,
        event: &AuditEvent,
    ) -> Result<(), StorageError>;
    /// Adds a new current secret, with its event; the current one stays valid until
    /// `old_valid_until` and any older one ends at the event's time. False, with nothing
    /// written, when the key is revoked.
    async fn rotate(
        &self,
        tenant: &Tenant,
        id: Uuid,
        new_hash: &KeyHash,
        new_prefix: &str,
        old_valid_until: Millis,
        event: &AuditEvent,
    ) -> Result<bool, StorageError>;
    /// The tenant's events that `filter` matches, newest first, starting after `after`, at most
    /// `limit`.
    async fn audit_events(
        &self,
        tenant: &Tenant,
        filter: EventFilter,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Vec<AuditEvent>, StorageError>;
    /// Deletes those of `hashes` (secrets of one key) that have ended by `now`. Called only once
    /// their final denials are in the cache: until then a later management call (a revocation)
    /// still finds them, and denies them again.
    async fn forget(
        &self,
        tenant: &Tenant,
        id: Uuid,
        hashes: &[KeyHash],
        now: Millis,
    ) -> Result<(), StorageError>;
    /// Every secret of one key, for re-syncing the cache after a change.
    async fn secrets_of(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError>;
    async fn find_secret(&self, hash: &KeyHash) -> Result<Option<StoredSecret>, StorageError>;
    /// The secrets of these hashes that D1 holds, of any tenant. One lookup each unless the
    /// store can do better (D1 batches them).
    async fn find_secrets(
        &self,
        hashes: &[KeyHash],
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError> {
        let mut found = Vec::new();
        for hash in hashes {
            if let Some(secret) = self.find_secret(hash).await? {
                found.push((hash.clone(), secret));
            }
        }
        Ok(found)
    }
}

/// The three places of an entry, in the order readers consult them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    Denied,
    Managed,
    Filled,
}

/// What the cache holds for one secret, read from every place at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cached {
    pub denied: Option<CacheEntry>,
    pub managed: Option<CacheEntry>,
    pub filled: Option<CacheEntry>,
}

impl Cached {
    /// The entry that decides, if any: a denial in the denied place first, then the first
    /// managed or filled entry that is still fresh. A grant past its freshness counts as absent.
    pub fn decide(&self, now: Millis) -> Option<&CacheEntry> {
        if let Some(denial @ CacheEntry::Deny(_)) = &self.denied {
            return Some(denial);
        }
        [&self.managed, &self.filled]
            .into_iter()
            .flatten()
            .find(|entry| entry.is_fresh(now))
    }
}

/// One write to the cache, decided by the service and carried out by the caller (a validation's
/// fill runs off the response path).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheWrite {
    pub place: Place,
    pub hash: KeyHash,
    pub entry: CacheEntry,
    pub ttl_seconds: u64,
}

/// KV refuses an `expirationTtl` under 60 s, so that is the shortest negative fill it allows.
pub const DENY_FILL_TTL_SECONDS: u64 = 60;
/// A final denial must outlive every grant written before it; grants are fresh for minutes, so
/// an hour is far beyond any of them. After that, D1 answers (and a fill denies again).
pub const DENIED_TTL_SECONDS: u64 = 3600;

impl CacheWrite {
    /// What a validation writes after reading D1: only ever into the filled place.
    fn fill(hash: KeyHash, entry: CacheEntry) -> CacheWrite {
        let ttl_seconds = match entry {
            CacheEntry::Grant(_) => (GRANT_FRESH_MS / 1000) as u64,
            CacheEntry::Deny(_) => DENY_FILL_TTL_SECONDS,
        };
        CacheWrite {
            place: Place::Filled,
            hash,
            entry,
            ttl_seconds,
        }
    }

    /// What a management call writes from D1's state after its change: denials into the
    /// denied place, grants into the managed place.
    fn managed(hash: KeyHash, entry: CacheEntry) -> CacheWrite {
        let (place, ttl_seconds) = match entry {
            CacheEntry::Grant(_) => (Place::Managed, (MANAGED_GRANT_FRESH_MS / 1000) as u64),
            CacheEntry::Deny(_) => (Place::Denied, DENIED_TTL_SECONDS),
        };
        CacheWrite {
            place,
            hash,
            entry,
            ttl_seconds,
        }
    }
}

#[allow(async_fn_in_trait)]
pub trait KeyCache {
    /// Every place's entry for one secret.
    async fn read(&self, hash: &KeyHash) -> Result<Cached, StorageError>;
    async fn write(&self, write: &CacheWrite) -> Result<(), StorageError>;
}

/// How a validation found its answer, for the log and for the tests that prove the cache works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Refused before any lookup (malformed key).
    Skipped,
    Hit,
    Negative,
    Miss,
    /// KV failed; D1 answered.
    Bypassed,
    /// Not in the cache, and the client is over the failed-authentication limit: refused
    /// before any D1 read.
    Blocked,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Skipped => "skipped",
            CacheOutcome::Hit => "hit",
            CacheOutcome::Negative => "negative",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypassed => "bypassed",
            CacheOutcome::Blocked => "blocked",
        }
    }
}

pub struct Validation {
    pub admitted: Option<Admitted>,
    /// When not admitted: the key of the request's tenant that the secret belongs to, and why
    /// it is refused, for the usage counts. Never part of the response.
    pub refused: Option<RefusedKey>,
    pub cache: CacheOutcome,
    /// A cache fill for the caller to run off the response path.
    pub fill: Option<CacheWrite>,
}

impl Validation {
    /// What `entry` says of the key for `tenant` at `now`, found the way `cache` says.
    fn of(
        entry: &CacheEntry,
        tenant: &Tenant,
        now: Millis,
        cache: CacheOutcome,
        fill: Option<CacheWrite>,
    ) -> Validation {
        let admitted = entry.admit(tenant, now);
        Validation {
            refused: match admitted {
                Some(_) => None,
                None => entry.refused_key(tenant, now),
            },
            admitted,
            cache,
            fill,
        }
    }
}

impl Cached {
    /// The validation that the cache alone decides (a hit, or a negative entry), or None when
    /// D1 must answer. The gateway's fast path (the Worker's JavaScript shell) stops here.
    pub fn validation(&self, tenant: &Tenant, now: Millis) -> Option<Validation> {
        let entry = self.decide(now)?;
        let cache = if entry.is_deny() {
            CacheOutcome::Negative
        } else {
            CacheOutcome::Hit
        };
        Some(Validation::of(entry, tenant, now, cache, None))
    }
}

pub struct Keys<'a, S, C> {
    pub store: &'a S,
    pub cache: &'a C,
}

impl<S: KeyStore, C: KeyCache> Keys<'_, S, C> {
    /// Checks a presented key. A malformed key is refused before any read of KV or D1. A client
    /// over the failed-authentication limit (`blocked`) is still admitted by a cached grant,
    /// but refused any lookup that would reach D1.
    pub async fn validate(
        &self,
        presented: &str,
        tenant: &Tenant,
        now: Millis,
        blocked: bool,
    ) -> Result<Validation, AppError> {
        let refused = |cache| Validation {
            admitted: None,
            refused: None,
            cache,
            fill: None,
        };
        let Some(key) = PlainKey::parse(presented) else {
            return Ok(refused(CacheOutcome::Skipped));
        };
        let hash = key.hash();
        let cached = self.cache.read(&hash).await;
        if let Some(validation) = cached.as_ref().ok().and_then(|c| c.validation(tenant, now)) {
            return Ok(validation);
        }
        if blocked {
            return Ok(refused(CacheOutcome::Blocked));
        }
        let entry = CacheEntry::from_stored(self.store.find_secret(&hash).await?.as_ref(), now);
        Ok(match cached {
            Ok(_) => {
                let fill = CacheWrite::fill(hash, entry.clone());
                Validation::of(&entry, tenant, now, CacheOutcome::Miss, Some(fill))
            }
            // KV trouble must not lock every integration out: D1 still answers.
            Err(_) => Validation::of(&entry, tenant, now, CacheOutcome::Bypassed, None),
        })
    }

    pub async fn create(
        &self,
        tenant: &Tenant,
        request: NewKey,
        actor: &Actor,
        now: Millis,
    ) -> Result<(ApiKey, PlainKey), AppError> {
        let key =
            PlainKey::generate().map_err(|e| AppError::Internal(format!("getrandom: {e}")))?;
        let record = ApiKey {
            id: random_id()?,
            key_prefix: key.prefix(),
            name: request.name,
            scopes: request.scopes,
            expires_at: request.expires_at,
            last_used_at: None,
            revoked_at: None,
            created_at: now,
            created_by: Some(actor.name.clone()),
            allowed_ips: request.allowed_ips,
        };
        let event = AuditEvent::new(
            random_id()?,
            now,
            AuditAction::Created,
            record.id,
            actor,
            audit::created(&record),
        );
        self.store
            .insert(tenant, &record, &key.hash(), &event)
            .await?;
        // A failed cache write is harmless here: the key is new, so no stale entry can exist, and
        // a validation will find it in D1. The change is kept rather than failing the request
        // and losing the only copy of the key.
        let _ = self.sync_cache(tenant, record.id, now).await;
        Ok((record, key))
    }

    pub async fn list(
        &self,
        tenant: &Tenant,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<(Vec<ApiKey>, Option<Cursor>), AppError> {
        let page = self.store.list(tenant, limit + 1, after).await?;
        Ok(split_page(page, limit, |key| Cursor {
            created_at: key.created_at,
            id: key.id,
        }))
    }

    pub async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<ApiKey, AppError> {
        self.store.get(tenant, id).await?.ok_or(AppError::NotFound)
    }

    /// A change that leaves every field as it is writes nothing and records nothing, but still
    /// re-syncs the cache, so that repeating a call that answered `propagation_failed` is safe.
    /// A change that loses a race with another is read again and retried.
    pub async fn update(
        &self,
        tenant: &Tenant,
        id: Uuid,
        change: KeyChange,
        actor: &Actor,
        now: Millis,
    ) -> Result<ApiKey, AppError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let before = self.require_active(tenant, id).await?;
            let details = audit::updated(&before, &before.changed(&change));
            if details.is_empty() {
                self.sync_cache(tenant, id, now).await?;
                return Ok(before);
            }
            let event =
                AuditEvent::new(random_id()?, now, AuditAction::Updated, id, actor, details);
            if self.store.update(tenant, &before, &change, &event).await? {
                self.sync_cache(tenant, id, now).await?;
                return self.get(tenant, id).await;
            }
        }
        Err(AppError::Unavailable(format!(
            "key {id} changed under {UPDATE_ATTEMPTS} updates in a row"
        )))
    }

    /// Idempotent: revoking a revoked key succeeds (recording nothing) and re-writes its
    /// denials, so a call that answered `propagation_failed` is safe to repeat.
    pub async fn revoke(
        &self,
        tenant: &Tenant,
        id: Uuid,
        actor: &Actor,
        now: Millis,
    ) -> Result<(), AppError> {
        self.revoke_recording(
            tenant,
            id,
            AuditAction::Revoked,
            Details::none(),
            actor,
            now,
        )
        .await
    }

    /// A revocation recorded as `action` with `details`: `api_key.revoked` by an admin, or
    /// `api_key.leaked` for a key reported leaked.
    pub async fn revoke_recording(
        &self,
        tenant: &Tenant,
        id: Uuid,
        action: AuditAction,
        details: Details,
        actor: &Actor,
        now: Millis,
    ) -> Result<(), AppError> {
        self.get(tenant, id).await?;
        let event = AuditEvent::new(random_id()?, now, action, id, actor, details);
        self.store.revoke(tenant, id, &event).await?;
        self.sync_cache(tenant, id, now).await
    }

    pub async fn rotate(
        &self,
        tenant: &Tenant,
        id: Uuid,
        grace_seconds: u64,
        actor: &Actor,
        now: Millis,
    ) -> Result<(ApiKey, PlainKey), AppError> {
        self.require_active(tenant, id).await?;
        let key =
            PlainKey::generate().map_err(|e| AppError::Internal(format!("getrandom: {e}")))?;
        let old_valid_until = now + (grace_seconds as Millis) * 1000;
        let details = audit::rotated(grace_seconds, &key.prefix());
        let event = AuditEvent::new(random_id()?, now, AuditAction::Rotated, id, actor, details);
        if !self
            .store
            .rotate(
                tenant,
                id,
                &key.hash(),
                &key.prefix(),
                old_valid_until,
                &event,
            )
            .await?
        {
            return Err(AppError::KeyRevoked);
        }
        self.sync_cache(tenant, id, now).await?;
        Ok((self.get(tenant, id).await?, key))
    }

    /// The tenant's audit events that `filter` matches, newest first: a page, and the cursor
    /// after it while more remain.
    pub async fn audit_events(
        &self,
        tenant: &Tenant,
        filter: EventFilter,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<(Vec<AuditEvent>, Option<Cursor>), AppError> {
        let page = self
            .store
            .audit_events(tenant, filter, limit + 1, after)
            .await?;
        Ok(split_page(page, limit, |event| Cursor {
            created_at: event.at,
            id: event.id,
        }))
    }

    async fn require_active(&self, tenant: &Tenant, id: Uuid) -> Result<ApiKey, AppError> {
        let key = self.get(tenant, id).await?;
        if key.revoked_at.is_some() {
            return Err(AppError::KeyRevoked);
        }
        Ok(key)
    }

    /// Writes the cache entry of every secret of a key from D1's state after a change. It reads
    /// D1 once more after writing and repeats if the state moved meanwhile, so that two
    /// concurrent management calls on one key cannot leave the older state in the managed place.
    /// Secrets that have ended (rotated out, grace over) are deleted from D1 once their denial
    /// is written, and not before: a secret deleted with its denial unwritten could be admitted
    /// by an older grant after a revocation that no longer knew of it. So a key keeps its
    /// current secret, one in grace, and only those ended ones whose denial has failed so far.
    ///
    /// The change in D1 stands whatever happens here; a failed write is `propagation_failed`,
    /// and then the stale entry ends by itself (README, "Cache").
    async fn sync_cache(&self, tenant: &Tenant, id: Uuid, now: Millis) -> Result<(), AppError> {
        let mut secrets = self.store.secrets_of(tenant, id).await?;
        for _ in 0..3 {
            let mut failed = false;
            let mut denied_and_ended = Vec::new();
            for (hash, secret) in &secrets {
                let entry = CacheEntry::from_stored_managed(Some(secret), now);
                let write = CacheWrite::managed(hash.clone(), entry);
                let written = self.cache.write(&write).await.is_ok();
                failed |= !written;
                if written && secret.valid_until.is_some_and(|until| until <= now) {
                    denied_and_ended.push(hash.clone());
                }
            }
            if !denied_and_ended.is_empty() {
                self.store
                    .forget(tenant, id, &denied_and_ended, now)
                    .await?;
            }
            let after = self.store.secrets_of(tenant, id).await?;
            let unsettled = |(hash, _): &&(KeyHash, StoredSecret)| !denied_and_ended.contains(hash);
            if after
                .iter()
                .filter(unsettled)
                .eq(secrets.iter().filter(unsettled))
            {
                return if failed {
                    Err(AppError::PropagationFailed)
                } else {
                    Ok(())
                };
            }
            secrets = after;
        }
        Err(AppError::PropagationFailed)
    }
}

/// An update that keeps losing races to other updates of the same key gives up after this many
/// reads. Each lost race means that another update was saved meanwhile, and each update is saved
/// once, so an update always succeeds unless this many others of the same key land while it
/// runs.
const UPDATE_ATTEMPTS: usize = 5;

/// A page read with one item more than `limit`: that item only tells that more remain, and the
/// cursor is the position of the page's last item.
fn split_page<T>(
    mut page: Vec<T>,
    limit: u32,
    position: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<Cursor>) {
    if page.len() <= limit as usize {
        return (page, None);
    }
    page.truncate(limit as usize);
    let next = page.last().map(position);
    (page, next)
}

fn random_id() -> Result<Uuid, AppError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Internal(format!("getrandom: {e}")))?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Client IPs that the rate limiter refused recently, remembered by the isolate so that their
/// next requests are answered 429 before any KV or D1 read. The limiter binding is the shared
/// counter; this is only its local echo.
#[derive(Default)]
pub struct BlockedClients {
    until: std::collections::HashMap<String, Millis>,
}

impl BlockedClients {
    /// Seconds left on a block, if the client is blocked at `now`.
    pub fn retry_after(&self, client: &str, now: Millis) -> Option<u32> {
        let until = self.until(client, now)?;
        Some(((until - now + 999) / 1000) as u32)
    }

    /// When the client's block ends, if it is blocked at `now`.
    pub fn until(&self, client: &str, now: Millis) -> Option<Millis> {
        let until = *self.until.get(client)?;
        (until > now).then_some(until)
    }

    pub fn block(&mut self, client: &str, until: Millis, now: Millis) {
        if self.until.len() > 10_000 {
            self.until.retain(|_, at| *at > now);
        }
        self.until.insert(client.to_string(), until);
    }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
