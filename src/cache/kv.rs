//! `KeyCache` on KV: the three places of `service`'s cache design as three entry names per secret,
//! `denied/`, `managed/` and `filled/`, each with the time to live the service chose.

use crate::boundary;
use crate::config::{missing_binding, names};
use crate::domain::{cache_entry::CacheEntry, key::KeyHash};
use crate::service::{CacheWrite, Cached, KeyCache, Place, StorageError};
use std::cell::Cell;
use wasm_bindgen::prelude::*;
use worker::js_sys;
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The KV namespace binding. Bound directly rather than through `worker::kv::KvStore`,
    /// which looks up five methods per binding and builds an options object per read: on the
    /// gateway's hot path that showed in the profile. Reads go through `boundary::read_all`.
    #[derive(Clone)]
    pub type KvNamespace;

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

/// The entry name of a place, from the key hash's `cache_id` (the hash of the key hash names the
/// entry, never the key). The id is a SHA-256 of its own: a read of the three places computes it
/// once, not once a place (in the edge bench's profiles, three digests and three `format!`s were
/// the largest piece of the wasm's own work on the gateway's path).
fn name(place: Place, cache_id: &str) -> String {
    let prefix = match place {
        Place::Denied => "denied/",
        Place::Managed => "managed/",
        Place::Filled => "filled/",
    };
    let mut name = String::with_capacity(prefix.len() + cache_id.len());
    name.push_str(prefix);
    name.push_str(cache_id);
    name
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
            .ok_or_else(|| StorageError(missing_binding(names::API_KEY_CACHE)))
    }
}

/// An entry that does not parse (an older format, say) is absent, not an error.
fn entry(value: JsValue) -> Option<CacheEntry> {
    value
        .as_string()
        .and_then(|t| serde_json::from_str(&t).ok())
}

impl KvCache {
    /// Starts the read of the three places: one bulk read, one request to KV. The promise gives
    /// what `cached` reads.
    pub fn start_read(&self, hash: &KeyHash) -> Result<js_sys::Promise, StorageError> {
        let kv = self.store()?;
        let cache_id = hash.cache_id();
        let keys =
            [Place::Denied, Place::Managed, Place::Filled].map(|place| name(place, &cache_id));
        let reads = boundary::read_all(kv, &keys.join("\n")).map_err(kv_error("get"))?;
        self.reads.set(self.reads.get() + 3);
        Ok(reads)
    }

    /// The entries that `start_read`'s promise gave, in the order of its places.
    pub fn cached(values: JsValue) -> Cached {
        let values: js_sys::Array = values.unchecked_into();
        Cached {
            denied: entry(values.get(0)),
            managed: entry(values.get(1)),
            filled: entry(values.get(2)),
        }
    }
}

impl KeyCache for KvCache {
    async fn read(&self, hash: &KeyHash) -> Result<Cached, StorageError> {
        let values = JsFuture::from(self.start_read(hash)?)
            .await
            .map_err(kv_error("get"))?;
        Ok(KvCache::cached(values))
    }

    async fn write(&self, write: &CacheWrite) -> Result<(), StorageError> {
        let json = serde_json::to_string(&write.entry)
            .map_err(|e| StorageError(format!("KV encode: {e}")))?;
        let options = js_sys::Object::new();
        js_sys::Reflect::set(
            &options,
            &"expirationTtl".into(),
            &(write.ttl_seconds as f64).into(),
        )
        .map_err(kv_error("put"))?;
        let promise = self
            .store()?
            .put(&name(write.place, &write.hash.cache_id()), &json, &options)
            .map_err(kv_error("put"))?;
        JsFuture::from(promise)
            .await
            .map(drop)
            .map_err(kv_error("put"))
    }
}
