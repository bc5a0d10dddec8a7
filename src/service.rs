//! The use cases: create, list, read, change, revoke and rotate keys, and validate a presented
//! key. Written against two traits so that the logic (cache fence, grace windows, negative
//! cache, lastUsed throttling) is tested natively with in-memory fakes; `store::d1` and
//! `cache::kv` implement them on the real bindings.
//!
//! Cache design, and why it cannot resurrect a revoked key at the location that revoked it:
//! - The *authoritative* entry of a secret is written only by management calls, from D1's state
//!   after their change (`sync_cache`). A revocation writes a `Deny` there.
//! - A validation that misses the cache reads D1 and fills a *separate* entry that readers
//!   consult only when the authoritative one is absent. A fill that raced a revocation can
//!   therefore only land behind the revocation's `Deny`, never over it.
//! - A `Deny` is final (unknown, revoked, expired and rotated-out secrets never become valid
//!   again), so a validation may write it into the authoritative place: that is the negative
//!   cache, and it makes a flood of guesses cost one KV read each.

use crate::domain::{
    cache_entry::{Admitted, CacheEntry, StoredSecret},
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
/// result carries the tenant for the caller to check.
#[allow(async_fn_in_trait)]
pub trait KeyStore {
    async fn insert(
        &self,
        tenant: &Tenant,
        key: &ApiKey,
        hash: &KeyHash,
    ) -> Result<(), StorageError>;
    /// Newest first, starting after `after`, at most `limit` keys.
    async fn list(
        &self,
        tenant: &Tenant,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Vec<ApiKey>, StorageError>;
    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Option<ApiKey>, StorageError>;
    /// Applies the change unless the key is revoked; false when nothing was changed.
    async fn update(
        &self,
        tenant: &Tenant,
        id: Uuid,
        change: &KeyChange,
    ) -> Result<bool, StorageError>;
    /// Marks the key revoked at `now`, keeping the first revocation time if repeated.
    async fn revoke(&self, tenant: &Tenant, id: Uuid, now: Millis) -> Result<(), StorageError>;
    /// Adds a new current secret; the current one stays valid until `old_valid_until` and any
    /// older one ends now. False, with nothing changed, when the key is revoked.
    async fn rotate(
        &self,
        tenant: &Tenant,
        id: Uuid,
        new_hash: &KeyHash,
        new_prefix: &str,
        old_valid_until: Millis,
        now: Millis,
    ) -> Result<bool, StorageError>;
    /// Every secret of one key, for re-syncing the cache after a change.
    async fn secrets_of(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError>;
    async fn find_secret(&self, hash: &KeyHash) -> Result<Option<StoredSecret>, StorageError>;
    /// Sets lastUsedAt unless it was set less than a minute before `now`.
    async fn touch_last_used(
        &self,
        tenant: &Tenant,
        id: Uuid,
        now: Millis,
    ) -> Result<(), StorageError>;
}

#[allow(async_fn_in_trait)]
pub trait KeyCache {
    /// The authoritative entry, or else the filled one.
    async fn get(&self, hash: &KeyHash) -> Result<Option<CacheEntry>, StorageError>;
    /// Written by management calls only.
    async fn put_authoritative(
        &self,
        hash: &KeyHash,
        entry: &CacheEntry,
    ) -> Result<(), StorageError>;
    /// Written by validations after a miss: grants go to the fill place, denials (final) to the
    /// authoritative place, with a short time to live.
    async fn fill(&self, hash: &KeyHash, entry: &CacheEntry) -> Result<(), StorageError>;
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
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Skipped => "skipped",
            CacheOutcome::Hit => "hit",
            CacheOutcome::Negative => "negative",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypassed => "bypassed",
        }
    }
}

pub struct Validation {
    pub admitted: Option<Admitted>,
    pub cache: CacheOutcome,
    /// A cache fill for the caller to run off the response path.
    pub fill: Option<(KeyHash, CacheEntry)>,
}

pub struct Keys<'a, S, C> {
    pub store: &'a S,
    pub cache: &'a C,
}

impl<S: KeyStore, C: KeyCache> Keys<'_, S, C> {
    /// Checks a presented key. A malformed key is refused before any read of KV or D1.
    pub async fn validate(
        &self,
        presented: &str,
        tenant: &Tenant,
        now: Millis,
    ) -> Result<Validation, AppError> {
        let Some(key) = PlainKey::parse(presented) else {
            return Ok(Validation {
                admitted: None,
                cache: CacheOutcome::Skipped,
                fill: None,
            });
        };
        let hash = key.hash();
        let cached = self.cache.get(&hash).await;
        let (entry, cache, fill) = match cached {
            Ok(Some(entry)) => {
                let outcome = if entry == CacheEntry::Deny {
                    CacheOutcome::Negative
                } else {
                    CacheOutcome::Hit
                };
                (entry, outcome, None)
            }
            Ok(None) => {
                let entry =
                    CacheEntry::from_stored(self.store.find_secret(&hash).await?.as_ref(), now);
                (entry.clone(), CacheOutcome::Miss, Some((hash, entry)))
            }
            // KV trouble must not lock every integration out: D1 still answers.
            Err(_) => (
                CacheEntry::from_stored(self.store.find_secret(&hash).await?.as_ref(), now),
                CacheOutcome::Bypassed,
                None,
            ),
        };
        Ok(Validation {
            admitted: entry.admit(tenant, now),
            cache,
            fill,
        })
    }

    pub async fn create(
        &self,
        tenant: &Tenant,
        request: NewKey,
        created_by: String,
        now: Millis,
    ) -> Result<(ApiKey, PlainKey), AppError> {
        let key =
            PlainKey::generate().map_err(|e| AppError::Internal(format!("getrandom: {e}")))?;
        let mut id_bytes = [0u8; 16];
        getrandom::fill(&mut id_bytes)
            .map_err(|e| AppError::Internal(format!("getrandom: {e}")))?;
        let record = ApiKey {
            id: uuid::Builder::from_random_bytes(id_bytes).into_uuid(),
            key_prefix: key.prefix(),
            name: request.name,
            scopes: request.scopes,
            expires_at: request.expires_at,
            last_used_at: None,
            revoked_at: None,
            created_at: now,
            created_by: Some(created_by),
        };
        self.store.insert(tenant, &record, &key.hash()).await?;
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
        let mut page = self.store.list(tenant, limit + 1, after).await?;
        let next = if page.len() > limit as usize {
            page.truncate(limit as usize);
            page.last().map(|last| Cursor {
                created_at: last.created_at,
                id: last.id,
            })
        } else {
            None
        };
        Ok((page, next))
    }

    pub async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<ApiKey, AppError> {
        self.store.get(tenant, id).await?.ok_or(AppError::NotFound)
    }

    pub async fn update(
        &self,
        tenant: &Tenant,
        id: Uuid,
        change: KeyChange,
        now: Millis,
    ) -> Result<ApiKey, AppError> {
        self.require_active(tenant, id).await?;
        if !self.store.update(tenant, id, &change).await? {
            return Err(AppError::KeyRevoked);
        }
        self.sync_cache(tenant, id, now).await?;
        self.get(tenant, id).await
    }

    /// Idempotent: revoking a revoked key succeeds and re-writes its denials.
    pub async fn revoke(&self, tenant: &Tenant, id: Uuid, now: Millis) -> Result<(), AppError> {
        self.get(tenant, id).await?;
        self.store.revoke(tenant, id, now).await?;
        self.sync_cache(tenant, id, now).await
    }

    pub async fn rotate(
        &self,
        tenant: &Tenant,
        id: Uuid,
        grace_seconds: u64,
        now: Millis,
    ) -> Result<(ApiKey, PlainKey), AppError> {
        self.require_active(tenant, id).await?;
        let key =
            PlainKey::generate().map_err(|e| AppError::Internal(format!("getrandom: {e}")))?;
        let old_valid_until = now + (grace_seconds as Millis) * 1000;
        if !self
            .store
            .rotate(tenant, id, &key.hash(), &key.prefix(), old_valid_until, now)
            .await?
        {
            return Err(AppError::KeyRevoked);
        }
        self.sync_cache(tenant, id, now).await?;
        Ok((self.get(tenant, id).await?, key))
    }

    async fn require_active(&self, tenant: &Tenant, id: Uuid) -> Result<ApiKey, AppError> {
        let key = self.get(tenant, id).await?;
        if key.revoked_at.is_some() {
            return Err(AppError::KeyRevoked);
        }
        Ok(key)
    }

    /// Re-writes the authoritative cache entry of every secret of a key from D1's state. It
    /// reads D1 once more after writing and repeats if the state moved meanwhile, so that two
    /// concurrent management calls on one key cannot leave the older state in KV.
    async fn sync_cache(&self, tenant: &Tenant, id: Uuid, now: Millis) -> Result<(), AppError> {
        let mut secrets = self.store.secrets_of(tenant, id).await?;
        for _ in 0..3 {
            for (hash, secret) in &secrets {
                self.cache
                    .put_authoritative(hash, &CacheEntry::from_stored(Some(secret), now))
                    .await?;
            }
            let after = self.store.secrets_of(tenant, id).await?;
            if after == secrets {
                return Ok(());
            }
            secrets = after;
        }
        Err(AppError::Unavailable(
            "cache sync did not settle after 3 rounds".into(),
        ))
    }
}

/// Decides in the isolate whether lastUsedAt is due a write, so that a burst of requests costs
/// at most one D1 write per key per minute per isolate; the SQL condition then makes it at most
/// one per minute overall.
#[derive(Default)]
pub struct LastUsedThrottle {
    written: std::collections::HashMap<Uuid, Millis>,
}

pub const LAST_USED_INTERVAL_MS: Millis = 60_000;

impl LastUsedThrottle {
    pub fn due(&mut self, id: Uuid, now: Millis) -> bool {
        if self.written.len() > 10_000 {
            self.written
                .retain(|_, at| now - *at < LAST_USED_INTERVAL_MS);
        }
        match self.written.get(&id) {
            Some(at) if now - at < LAST_USED_INTERVAL_MS => false,
            _ => {
                self.written.insert(id, now);
                true
            }
        }
    }
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
        let until = *self.until.get(client)?;
        (until > now).then(|| ((until - now + 999) / 1000) as u32)
    }

    pub fn block(&mut self, client: &str, until: Millis, now: Millis) {
        if self.until.len() > 10_000 {
            self.until.retain(|_, at| *at > now);
        }
        self.until.insert(client.to_string(), until);
    }
}

#[cfg(test)]
mod tests;
