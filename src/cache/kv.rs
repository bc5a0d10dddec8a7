//! `KeyCache` on KV. Entries are named by a hash of the key hash (never the key), in two places:
//! `auth/` written by management calls (and by final denials), `fill/` written by validations
//! after a miss. See `service` for why that split keeps revocation final.

use crate::config::names;
use crate::domain::{cache_entry::CacheEntry, key::KeyHash};
use crate::service::{KeyCache, StorageError};
use std::cell::Cell;
use wasm_bindgen::prelude::*;
use worker::js_sys;
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The KV namespace binding, with the two calls this cache makes. Bound directly rather
    /// than through `worker::kv::KvStore`, which looks up five methods per binding and builds an
    /// options object per read: on the gateway's hot path that showed in the profile.
    #[derive(Clone)]
    pub type KvNamespace;

    /// `get(key)`: the value as text, or null.
    #[wasm_bindgen(method, catch)]
    fn get(this: &KvNamespace, key: &str) -> Result<js_sys::Promise, JsValue>;

    /// `put(key, value, { expirationTtl })`.
    #[wasm_bindgen(method, catch)]
    fn put(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &JsValue,
    ) -> Result<js_sys::Promise, JsValue>;
}

fn kv_error(operation: &'static str) -> impl Fn(JsValue) -> StorageError {
    move |e| StorageError(format!("KV {operation}: {e:?}"))
}

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
    kv: Option<KvNamespace>,
    /// KV reads, for the request log and the tests that prove malformed keys skip KV.
    pub reads: Cell<u32>,
}

impl KvCache {
    pub fn new(kv: Option<KvNamespace>) -> KvCache {
        KvCache {
            kv,
            reads: Cell::new(0),
        }
    }

    fn store(&self) -> Result<&KvNamespace, StorageError> {
        self.kv
            .as_ref()
            .ok_or_else(|| StorageError(format!("KV binding {} is missing", names::API_KEY_CACHE)))
    }

    async fn read(&self, place: Place, hash: &KeyHash) -> Result<Option<CacheEntry>, StorageError> {
        self.reads.set(self.reads.get() + 1);
        let promise = self
            .store()?
            .get(&place.name(hash))
            .map_err(kv_error("get"))?;
        let text = JsFuture::from(promise)
            .await
            .map_err(kv_error("get"))?
            .as_string();
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
        let options = js_sys::Object::new();
        if let Some(ttl) = ttl_seconds {
            js_sys::Reflect::set(&options, &"expirationTtl".into(), &(ttl as f64).into())
                .map_err(kv_error("put"))?;
        }
        let promise = self
            .store()?
            .put(&place.name(hash), &json, &options)
            .map_err(kv_error("put"))?;
        JsFuture::from(promise)
            .await
            .map(drop)
            .map_err(kv_error("put"))
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
