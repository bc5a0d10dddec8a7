//! `KeyCache` on KV. Entries are named by a hash of the key hash (never the key), in two places:
//! `auth/` written by management calls (and by final denials), `fill/` written by validations
//! after a miss. See `service` for why that split keeps revocation final.

use crate::domain::{cache_entry::CacheEntry, key::KeyHash};
use crate::service::{KeyCache, StorageError};
use std::cell::Cell;
use worker::kv::KvStore;

/// KV refuses an `expirationTtl` under 60 s, so that is the shortest negative cache it allows.
const DENY_FILL_TTL_SECONDS: u64 = 60;
/// How long a grant found in D1 after a miss is trusted. Shadowed at once by any management write.
const GRANT_FILL_TTL_SECONDS: u64 = 300;
/// A revocation's denial must outlive every fill that may have raced it (and KV's 60 s edge
/// cache of that fill); a day is far beyond both. After that, D1 answers again.
const AUTHORITATIVE_DENY_TTL_SECONDS: u64 = 86_400;

#[derive(Clone, Copy)]
enum Place {
    Authoritative,
    Fill,
}

impl Place {
    fn name(self, hash: &KeyHash) -> String {
        let prefix = match self {
            Place::Authoritative => "auth",
            Place::Fill => "fill",
        };
        format!("{prefix}/{}", hash.cache_id())
    }
}

pub struct KvCache {
    /// None when the binding is missing: every operation then fails like an unavailable KV, and
    /// validation falls back to D1.
    kv: Option<KvStore>,
    /// KV reads, for the request log and the tests that prove malformed keys skip KV.
    pub reads: Cell<u32>,
}

impl KvCache {
    pub fn new(kv: Option<KvStore>) -> KvCache {
        KvCache {
            kv,
            reads: Cell::new(0),
        }
    }

    fn store(&self) -> Result<&KvStore, StorageError> {
        self.kv
            .as_ref()
            .ok_or_else(|| StorageError("KV binding API_KEY_CACHE is missing".into()))
    }

    async fn read(&self, place: Place, hash: &KeyHash) -> Result<Option<CacheEntry>, StorageError> {
        self.reads.set(self.reads.get() + 1);
        let text = self
            .store()?
            .get(&place.name(hash))
            .text()
            .await
            .map_err(|e| StorageError(format!("KV get: {e}")))?;
        // An entry that does not parse (an older format, say) is a miss, not an error.
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn write(
        &self,
        place: Place,
        hash: &KeyHash,
        entry: &CacheEntry,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StorageError> {
        let json =
            serde_json::to_string(entry).map_err(|e| StorageError(format!("KV encode: {e}")))?;
        let mut put = self
            .store()?
            .put(&place.name(hash), json)
            .map_err(|e| StorageError(format!("KV put: {e}")))?;
        if let Some(ttl) = ttl_seconds {
            put = put.expiration_ttl(ttl);
        }
        put.execute()
            .await
            .map_err(|e| StorageError(format!("KV put: {e}")))
    }
}

impl KeyCache for KvCache {
    async fn get(&self, hash: &KeyHash) -> Result<Option<CacheEntry>, StorageError> {
        match self.read(Place::Authoritative, hash).await? {
            Some(entry) => Ok(Some(entry)),
            None => self.read(Place::Fill, hash).await,
        }
    }

    async fn put_authoritative(
        &self,
        hash: &KeyHash,
        entry: &CacheEntry,
    ) -> Result<(), StorageError> {
        // Grants stay until the next management call rewrites them; they are kept in step with D1.
        let ttl = matches!(entry, CacheEntry::Deny).then_some(AUTHORITATIVE_DENY_TTL_SECONDS);
        self.write(Place::Authoritative, hash, entry, ttl).await
    }

    async fn fill(&self, hash: &KeyHash, entry: &CacheEntry) -> Result<(), StorageError> {
        match entry {
            CacheEntry::Deny => {
                self.write(
                    Place::Authoritative,
                    hash,
                    entry,
                    Some(DENY_FILL_TTL_SECONDS),
                )
                .await
            }
            CacheEntry::Grant(_) => {
                self.write(Place::Fill, hash, entry, Some(GRANT_FILL_TTL_SECONDS))
                    .await
            }
        }
    }
}
