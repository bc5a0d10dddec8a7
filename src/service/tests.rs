//! The service's logic against in-memory fakes of D1 and KV. The end-to-end suite tests the same
//! paths against the real bindings.

use super::*;
use crate::domain::{address::AllowList, request_body::parse_create, scopes::Scopes};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The fakes never wait, so one poll completes every future.
fn run<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the in-memory fakes never wait"),
    }
}

/// (tenant, key id, hash, valid until) of one secret.
type SecretRow = (String, Uuid, KeyHash, Option<Millis>);

#[derive(Default)]
struct MemStore {
    keys: RefCell<Vec<(String, ApiKey)>>,
    secrets: RefCell<Vec<SecretRow>>,
    /// (tenant, event), in the order written.
    events: RefCell<Vec<(String, AuditEvent)>>,
    lookups: Cell<u32>,
    /// Calls that changed a key.
    changes: Cell<u32>,
}

impl MemStore {
    fn stored(&self, tenant: &str, id: Uuid) -> Option<ApiKey> {
        self.keys
            .borrow()
            .iter()
            .find(|(t, k)| t == tenant && k.id == id)
            .map(|(_, k)| k.clone())
    }

    fn secret(
        &self,
        (tenant, id, _, valid_until): &(String, Uuid, KeyHash, Option<Millis>),
    ) -> StoredSecret {
        let key = self.stored(tenant, *id).unwrap();
        StoredSecret {
            key_id: key.id,
            tenant: tenant.clone(),
            scopes: key.scopes,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            valid_until: *valid_until,
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

    fn record(&self, tenant: &Tenant, event: &AuditEvent) {
        self.changes.set(self.changes.get() + 1);
        self.events
            .borrow_mut()
            .push((tenant.to_string(), event.clone()));
    }

    /// Every event of a tenant, oldest first.
    fn events_of(&self, tenant: &str) -> Vec<AuditEvent> {
        self.events
            .borrow()
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

impl KeyStore for MemStore {
    async fn insert(
        &self,
        tenant: &Tenant,
        key: &ApiKey,
        hash: &KeyHash,
        event: &AuditEvent,
    ) -> Result<(), StorageError> {
        self.record(tenant, event);
        self.keys
            .borrow_mut()
            .push((tenant.to_string(), key.clone()));
        self.secrets
            .borrow_mut()
            .push((tenant.to_string(), key.id, hash.clone(), None));
        Ok(())
    }
    async fn list(
        &self,
        tenant: &Tenant,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Vec<ApiKey>, StorageError> {
        let mut keys: Vec<ApiKey> = self
            .keys
            .borrow()
            .iter()
            .filter(|(t, _)| t == tenant.as_str())
            .map(|(_, k)| k.clone())
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id)));
        Ok(keys
            .into_iter()
            .filter(|k| after.is_none_or(|c| (k.created_at, k.id) < (c.created_at, c.id)))
            .take(limit as usize)
            .collect())
    }
    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Option<ApiKey>, StorageError> {
        Ok(self.stored(tenant.as_str(), id))
    }
    async fn update(
        &self,
        tenant: &Tenant,
        before: &ApiKey,
        change: &KeyChange,
        event: &AuditEvent,
    ) -> Result<bool, StorageError> {
        let changed = self
            .with_key(tenant, before.id, |k| {
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
            self.record(tenant, event);
        }
        Ok(changed)
    }
    async fn revoke(
        &self,
        tenant: &Tenant,
        id: Uuid,
        event: &AuditEvent,
    ) -> Result<(), StorageError> {
        let first = self.with_key(tenant, id, |k| {
            let first = k.revoked_at.is_none();
            k.revoked_at = k.revoked_at.or(Some(event.at));
            first
        });
        if first == Some(true) {
            self.record(tenant, event);
        }
        Ok(())
    }
    async fn rotate(
        &self,
        tenant: &Tenant,
        id: Uuid,
        new_hash: &KeyHash,
        new_prefix: &str,
        old_valid_until: Millis,
        event: &AuditEvent,
    ) -> Result<bool, StorageError> {
        if self.with_key(tenant, id, |k| k.revoked_at.is_none()) != Some(true) {
            return Ok(false);
        }
        let now = event.at;
        self.record(tenant, event);
        self.with_key(tenant, id, |k| k.key_prefix = new_prefix.to_string());
        let mut secrets = self.secrets.borrow_mut();
        for secret in secrets.iter_mut().filter(|s| s.1 == id) {
            secret.3 = Some(secret.3.map_or(old_valid_until, |until| until.min(now)));
        }
        secrets.push((tenant.to_string(), id, new_hash.clone(), None));
        Ok(true)
    }
    async fn audit_events(
        &self,
        tenant: &Tenant,
        filter: EventFilter,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Vec<AuditEvent>, StorageError> {
        let mut events: Vec<AuditEvent> = self
            .events_of(tenant.as_str())
            .into_iter()
            .filter(|e| filter.matches(e))
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        Ok(events
            .into_iter()
            .filter(|e| after.is_none_or(|c| (e.at, e.id) < (c.created_at, c.id)))
            .take(limit as usize)
            .collect())
    }
    async fn forget(
        &self,
        tenant: &Tenant,
        id: Uuid,
        hashes: &[KeyHash],
        now: Millis,
    ) -> Result<(), StorageError> {
        self.secrets.borrow_mut().retain(|s| {
            !(s.0 == tenant.as_str()
                && s.1 == id
                && hashes.contains(&s.2)
                && s.3.is_some_and(|until| until <= now))
        });
        Ok(())
    }
    async fn secrets_of(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError> {
        let secrets = self.secrets.borrow().clone();
        Ok(secrets
            .iter()
            .filter(|s| s.0 == tenant.as_str() && s.1 == id)
            .map(|s| (s.2.clone(), self.secret(s)))
            .collect())
    }
    async fn find_secret(&self, hash: &KeyHash) -> Result<Option<StoredSecret>, StorageError> {
        self.lookups.set(self.lookups.get() + 1);
        let secrets = self.secrets.borrow().clone();
        Ok(secrets
            .iter()
            .find(|s| &s.2 == hash)
            .map(|s| self.secret(s)))
    }
}

#[derive(Default)]
struct MemCache {
    places: RefCell<HashMap<(Place, KeyHash), CacheEntry>>,
    down: Cell<bool>,
    writes: Cell<u32>,
}

impl KeyCache for MemCache {
    async fn read(&self, hash: &KeyHash) -> Result<Cached, StorageError> {
        if self.down.get() {
            return Err(StorageError("kv down".into()));
        }
        let places = self.places.borrow();
        let at = |place| places.get(&(place, hash.clone())).cloned();
        Ok(Cached {
            denied: at(Place::Denied),
            managed: at(Place::Managed),
            filled: at(Place::Filled),
        })
    }
    async fn write(&self, write: &CacheWrite) -> Result<(), StorageError> {
        if self.down.get() {
            return Err(StorageError("kv down".into()));
        }
        self.writes.set(self.writes.get() + 1);
        self.places
            .borrow_mut()
            .insert((write.place, write.hash.clone()), write.entry.clone());
        Ok(())
    }
}

const NOW: Millis = 1_700_000_000_000;

fn acme() -> Tenant {
    Tenant::parse("acme").unwrap()
}

fn admin() -> Actor {
    Actor::new("admin@acme.test".into(), Some("203.0.113.7"))
}

fn create(keys: &Keys<'_, MemStore, MemCache>, body: &str, at: Millis) -> (ApiKey, PlainKey) {
    run(keys.create(
        &acme(),
        parse_create(body.as_bytes(), at).unwrap(),
        &admin(),
        at,
    ))
    .unwrap()
}

fn admitted(keys: &Keys<'_, MemStore, MemCache>, key: &str, at: Millis) -> bool {
    let validation = run(keys.validate(key, &acme(), at, false)).unwrap();
    if let Some(fill) = &validation.fill {
        run(keys.cache.write(fill)).unwrap();
    }
    validation.admitted.is_some()
}

#[test]
fn a_malformed_key_is_refused_without_any_lookup() {
    let (store, cache) = (
        MemStore::default(),
        MemCache {
            down: Cell::new(true),
            ..Default::default()
        },
    );
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let validation = run(keys.validate("rk_live_nothex", &acme(), NOW, false)).unwrap();
    assert_eq!(
        (validation.admitted, validation.cache),
        (None, CacheOutcome::Skipped)
    );
    assert_eq!(store.lookups.get(), 0);
}

#[test]
fn a_created_key_validates_from_the_cache_without_touching_d1() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, key) = create(&keys, r#"{"name": "Zapier", "scopes": "read,write"}"#, NOW);
    let validation = run(keys.validate(key.reveal(), &acme(), NOW, false)).unwrap();
    assert_eq!(validation.cache, CacheOutcome::Hit);
    assert_eq!(validation.admitted.unwrap().key_id, record.id);
    assert_eq!(store.lookups.get(), 0);
    let other =
        run(keys.validate(key.reveal(), &Tenant::parse("globex").unwrap(), NOW, false)).unwrap();
    assert!(other.admitted.is_none());
}

#[test]
fn unknown_keys_are_cached_negatively_after_one_lookup() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let guess = "rk_live_00000000000000000000000000000000";
    assert!(!admitted(&keys, guess, NOW));
    let again = run(keys.validate(guess, &acme(), NOW, false)).unwrap();
    assert_eq!(again.cache, CacheOutcome::Negative);
    assert_eq!(store.lookups.get(), 1);
}

#[test]
fn a_fill_that_raced_a_revocation_cannot_bring_the_key_back() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, key) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    cache.places.borrow_mut().clear(); // as if KV had lost the entry
                                       // A validation misses the cache and reads D1 while the key is still active ...
    let racing = run(keys.validate(key.reveal(), &acme(), NOW, false)).unwrap();
    assert!(racing.admitted.is_some());
    // ... the key is revoked ...
    run(keys.revoke(&acme(), record.id, &admin(), NOW + 1)).unwrap();
    // ... and only then does the racing validation's fill land.
    run(cache.write(&racing.fill.unwrap())).unwrap();
    assert!(!admitted(&keys, key.reveal(), NOW + 2));
    assert_eq!(
        run(keys.validate(key.reveal(), &acme(), NOW + 2, false))
            .unwrap()
            .cache,
        CacheOutcome::Negative
    );
}

#[test]
fn rotation_with_grace_keeps_the_old_secret_until_the_deadline_and_revocation_ends_both() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, old) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    let (rotated, new) = run(keys.rotate(&acme(), record.id, 60, &admin(), NOW)).unwrap();
    assert_eq!(rotated.id, record.id);
    assert_eq!(rotated.key_prefix, new.prefix());
    assert!(
        admitted(&keys, old.reveal(), NOW + 59_999) && admitted(&keys, new.reveal(), NOW + 59_999)
    );
    assert!(!admitted(&keys, old.reveal(), NOW + 60_000));
    run(keys.revoke(&acme(), record.id, &admin(), NOW + 1)).unwrap();
    assert!(!admitted(&keys, old.reveal(), NOW + 2) && !admitted(&keys, new.reveal(), NOW + 2));
    assert_eq!(
        run(keys.rotate(&acme(), record.id, 0, &admin(), NOW + 3)).unwrap_err(),
        AppError::KeyRevoked
    );
}

#[test]
fn rotation_without_grace_ends_the_old_secret_at_once() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, old) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    let (_, new) = run(keys.rotate(&acme(), record.id, 0, &admin(), NOW)).unwrap();
    assert!(!admitted(&keys, old.reveal(), NOW) && admitted(&keys, new.reveal(), NOW));
}

#[test]
fn a_scope_change_applies_to_the_next_validation() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, key) = create(&keys, r#"{"name": "ETL", "scopes": "read"}"#, NOW);
    let change = KeyChange {
        name: None,
        scopes: Some(Scopes::parse("write").unwrap()),
        allowed_ips: None,
    };
    run(keys.update(&acme(), record.id, change, &admin(), NOW)).unwrap();
    let admitted = run(keys.validate(key.reveal(), &acme(), NOW, false))
        .unwrap()
        .admitted
        .unwrap();
    assert!(admitted.scopes.allows_method("POST") && !admitted.scopes.allows_method("GET"));
}

#[test]
fn an_allow_list_change_applies_to_the_next_validation_ahead_of_an_older_fill() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, key) = create(
        &keys,
        r#"{"name": "ETL", "allowedIps": ["203.0.113.0/24"]}"#,
        NOW,
    );
    let client_ok = |at: Millis, client: &str| {
        let validation = run(keys.validate(key.reveal(), &acme(), at, false)).unwrap();
        if let Some(fill) = &validation.fill {
            run(keys.cache.write(fill)).unwrap();
        }
        validation.admitted.unwrap().admits_client(Some(client))
    };
    assert!(client_ok(NOW, "203.0.113.9") && !client_ok(NOW, "198.51.100.1"));
    // A validation elsewhere filled the cache from D1 with the old, wider list ...
    cache.places.borrow_mut().clear();
    assert!(client_ok(NOW + 1, "203.0.113.200"));
    // ... and the list is narrowed: the managed grant decides from the next request on.
    let narrowed = KeyChange {
        name: None,
        scopes: None,
        allowed_ips: Some(Some(AllowList::parse(["203.0.113.9"]).unwrap())),
    };
    let changed = run(keys.update(&acme(), record.id, narrowed, &admin(), NOW + 2)).unwrap();
    assert_eq!(
        changed.allowed_ips.map(|l| l.entries()),
        Some(vec!["203.0.113.9/32".to_string()])
    );
    assert!(client_ok(NOW + 3, "203.0.113.9") && !client_ok(NOW + 3, "203.0.113.200"));
    let cleared = KeyChange {
        name: None,
        scopes: None,
        allowed_ips: Some(None),
    };
    run(keys.update(&acme(), record.id, cleared, &admin(), NOW + 4)).unwrap();
    assert!(client_ok(NOW + 5, "198.51.100.1"));
    // A change of name only keeps the list as it is.
    let limited = KeyChange {
        name: None,
        scopes: None,
        allowed_ips: Some(Some(AllowList::parse(["2001:db8::/32"]).unwrap())),
    };
    run(keys.update(&acme(), record.id, limited, &admin(), NOW + 6)).unwrap();
    let renamed = KeyChange {
        name: Some("ETL 2".into()),
        scopes: None,
        allowed_ips: None,
    };
    run(keys.update(&acme(), record.id, renamed, &admin(), NOW + 7)).unwrap();
    assert!(client_ok(NOW + 8, "2001:db8::7") && !client_ok(NOW + 8, "198.51.100.1"));
}

#[test]
fn kv_failure_falls_back_to_d1() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (_, key) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    cache.down.set(true);
    let validation = run(keys.validate(key.reveal(), &acme(), NOW, false)).unwrap();
    assert_eq!(validation.cache, CacheOutcome::Bypassed);
    assert!(validation.admitted.is_some() && validation.fill.is_none());
}

#[test]
fn list_pages_newest_first_with_no_overlap_and_no_gap() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let created: Vec<Uuid> = (0..7)
        .map(|i| create(&keys, r#"{"name": "k"}"#, NOW + i / 2).0.id)
        .collect();
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = run(keys.list(&acme(), 3, cursor)).unwrap();
        seen.extend(page.iter().map(|k| (k.created_at, k.id)));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<(Millis, Uuid)> = created
        .iter()
        .map(|id| (store.stored("acme", *id).unwrap().created_at, *id))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);
}

#[test]
fn a_blocked_client_is_refused_until_its_block_ends() {
    let mut blocked = BlockedClients::default();
    assert_eq!(blocked.retry_after("203.0.113.7", NOW), None);
    blocked.block("203.0.113.7", NOW + 60_000, NOW);
    assert_eq!(blocked.retry_after("203.0.113.7", NOW), Some(60));
    assert_eq!(blocked.retry_after("203.0.113.7", NOW + 59_001), Some(1));
    assert_eq!(blocked.retry_after("203.0.113.7", NOW + 60_000), None);
    assert_eq!(blocked.retry_after("198.51.100.1", NOW), None);
    assert_eq!(blocked.until("203.0.113.7", NOW), Some(NOW + 60_000));
    assert_eq!(blocked.until("203.0.113.7", NOW + 60_000), None);
}

#[test]
fn a_thousand_rotations_leave_two_secrets_and_a_revocation_touches_only_those() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, _) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    let mut last = None;
    for i in 0..1000 {
        let grace = if i % 2 == 0 { 3600 } else { 0 };
        last = Some(
            run(keys.rotate(&acme(), record.id, grace, &admin(), NOW + i))
                .unwrap()
                .1,
        );
        assert!(store.secrets.borrow().len() <= 2, "after rotation {i}");
    }
    let writes_before = cache.writes.get();
    run(keys.revoke(&acme(), record.id, &admin(), NOW + 1000)).unwrap();
    assert!(cache.writes.get() - writes_before <= 2);
    assert!(!admitted(&keys, last.unwrap().reveal(), NOW + 1001));
}

#[test]
fn a_revocation_whose_cache_write_fails_says_so_and_ends_the_key_within_the_bound() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, key) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    assert!(admitted(&keys, key.reveal(), NOW));
    // KV takes no writes, but still serves the grant the creation wrote.
    let grant = cache.places.borrow().clone();
    cache.down.set(true);
    assert_eq!(
        run(keys.revoke(&acme(), record.id, &admin(), NOW + 1)).unwrap_err(),
        AppError::PropagationFailed
    );
    cache.down.set(false);
    *cache.places.borrow_mut() = grant;
    assert!(store
        .stored("acme", record.id)
        .unwrap()
        .revoked_at
        .is_some());
    let bound = NOW + crate::domain::cache_entry::MANAGED_GRANT_FRESH_MS;
    assert!(!admitted(&keys, key.reveal(), bound));
    // Repeating the call is safe and propagates the denial.
    run(keys.revoke(&acme(), record.id, &admin(), NOW + 2)).unwrap();
    assert!(!admitted(&keys, key.reveal(), NOW + 3));
}

#[test]
fn fills_never_write_the_denied_place() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, key) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    run(keys.revoke(&acme(), record.id, &admin(), NOW)).unwrap();
    cache.places.borrow_mut().clear();
    let validation = run(keys.validate(key.reveal(), &acme(), NOW + 1, false)).unwrap();
    let fill = validation.fill.unwrap();
    assert_eq!(fill.place, Place::Filled);
    assert!(fill.entry.is_deny());
    assert_eq!(fill.ttl_seconds, DENY_FILL_TTL_SECONDS);
}

#[test]
fn a_blocked_client_keeps_cached_grants_but_is_refused_any_d1_lookup() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (_, key) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    let cached = run(keys.validate(key.reveal(), &acme(), NOW, true)).unwrap();
    assert!(cached.admitted.is_some());
    let guess = "rk_live_00000000000000000000000000000000";
    let refused = run(keys.validate(guess, &acme(), NOW, true)).unwrap();
    assert_eq!(
        (refused.admitted, refused.cache),
        (None, CacheOutcome::Blocked)
    );
    cache.places.borrow_mut().clear();
    let uncached = run(keys.validate(key.reveal(), &acme(), NOW, true)).unwrap();
    assert_eq!(uncached.cache, CacheOutcome::Blocked);
    assert_eq!(store.lookups.get(), 0);
}

#[test]
fn every_change_is_recorded_once_with_its_actor_address_and_what_changed() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, _) = create(&keys, r#"{"name": "ETL", "scopes": "read"}"#, NOW);
    let change = KeyChange {
        name: Some("ETL nightly".into()),
        scopes: Some(Scopes::parse("read,write").unwrap()),
        allowed_ips: None,
    };
    run(keys.update(&acme(), record.id, change, &admin(), NOW + 1)).unwrap();
    let by_key = Actor::new("apikey:0b6f8d2e".into(), None);
    let (rotated, _) = run(keys.rotate(&acme(), record.id, 60, &by_key, NOW + 2)).unwrap();
    run(keys.revoke(&acme(), record.id, &admin(), NOW + 3)).unwrap();

    let (events, next) =
        run(keys.audit_events(&acme(), EventFilter::default(), 100, None)).unwrap();
    assert_eq!(next, None);
    let summary: Vec<(AuditAction, Millis, &str, Option<&str>, serde_json::Value)> = events
        .iter()
        .map(|e| {
            assert_eq!(e.key_id, record.id);
            (
                e.action,
                e.at,
                e.actor.as_str(),
                e.actor_ip.as_deref(),
                serde_json::from_str::<serde_json::Value>(e.details.as_str()).unwrap(),
            )
        })
        .collect();
    let ip = Some("203.0.113.7");
    assert_eq!(
        summary,
        vec![
            (
                AuditAction::Revoked,
                NOW + 3,
                "admin@acme.test",
                ip,
                json!({})
            ),
            (
                AuditAction::Rotated,
                NOW + 2,
                "apikey:0b6f8d2e",
                None,
                json!({"gracePeriodSeconds": 60, "keyPrefix": rotated.key_prefix})
            ),
            (
                AuditAction::Updated,
                NOW + 1,
                "admin@acme.test",
                ip,
                json!({
                    "name": {"from": "ETL", "to": "ETL nightly"},
                    "scopes": {"from": "read", "to": "read,write"}
                })
            ),
            (
                AuditAction::Created,
                NOW,
                "admin@acme.test",
                ip,
                json!({
                    "name": "ETL",
                    "scopes": "read",
                    "expiresAt": null,
                    "keyPrefix": record.key_prefix,
                    "allowedIps": null
                })
            ),
        ]
    );
    let revoked = store.stored("acme", record.id).unwrap();
    assert_eq!(revoked.revoked_at, Some(events[0].at));
}

#[test]
fn changes_that_change_nothing_record_nothing() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (record, _) = create(&keys, r#"{"name": "ETL", "scopes": "read,write"}"#, NOW);
    let (changes, writes) = (store.changes.get(), cache.writes.get());
    let same = KeyChange {
        name: Some("ETL".into()),
        scopes: Some(Scopes::parse("write,read").unwrap()),
        allowed_ips: None,
    };
    let unchanged = run(keys.update(&acme(), record.id, same, &admin(), NOW + 1)).unwrap();
    assert_eq!(unchanged, record);
    assert_eq!(store.changes.get(), changes, "nothing written to D1");
    // The cache is re-synced all the same: repeating a call is how a failed propagation is
    // retried.
    assert!(cache.writes.get() > writes);

    run(keys.revoke(&acme(), record.id, &admin(), NOW + 2)).unwrap();
    run(keys.revoke(&acme(), record.id, &admin(), NOW + 3)).unwrap();
    let rename = KeyChange {
        name: Some("x".into()),
        scopes: None,
        allowed_ips: None,
    };
    assert_eq!(
        run(keys.update(&acme(), record.id, rename, &admin(), NOW + 4)).unwrap_err(),
        AppError::KeyRevoked
    );
    assert_eq!(
        run(keys.rotate(&acme(), record.id, 0, &admin(), NOW + 5)).unwrap_err(),
        AppError::KeyRevoked
    );
    let actions: Vec<AuditAction> = store.events_of("acme").iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::Created, AuditAction::Revoked]);
    assert_eq!(
        store.stored("acme", record.id).unwrap().revoked_at,
        Some(NOW + 2),
        "the first revocation's time stays"
    );
}

#[test]
fn an_update_whose_key_changed_since_it_was_read_writes_neither_change_nor_event() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (stale, _) = create(&keys, r#"{"name": "ETL"}"#, NOW);
    let rename = |name: &str| KeyChange {
        name: Some(name.into()),
        scopes: None,
        allowed_ips: None,
    };
    run(keys.update(&acme(), stale.id, rename("B"), &admin(), NOW + 1)).unwrap();
    let event = AuditEvent::new(
        Uuid::from_bytes([3; 16]),
        NOW + 2,
        AuditAction::Updated,
        stale.id,
        &admin(),
        audit::updated(&stale, &stale.changed(&rename("C"))),
    );
    assert!(!run(store.update(&acme(), &stale, &rename("C"), &event)).unwrap());
    assert_eq!(store.stored("acme", stale.id).unwrap().name, "B");
    assert_eq!(store.events_of("acme").len(), 2);
}

#[test]
fn the_audit_log_pages_newest_first_by_tenant_and_by_key() {
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let (first, _) = create(&keys, r#"{"name": "one"}"#, NOW);
    let (second, _) = create(&keys, r#"{"name": "two"}"#, NOW);
    run(keys.rotate(&acme(), first.id, 0, &admin(), NOW + 1)).unwrap();
    run(keys.revoke(&acme(), second.id, &admin(), NOW + 1)).unwrap();
    run(keys.revoke(&acme(), first.id, &admin(), NOW + 2)).unwrap();
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let (page, next) =
            run(keys.audit_events(&acme(), EventFilter::default(), 2, after)).unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|e| (e.at, e.id)));
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<(Millis, Uuid)> = store
        .events_of("acme")
        .iter()
        .map(|e| (e.at, e.id))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!((seen.len(), seen), (5, expected));

    let (of_first, _) = run(keys.audit_events(&acme(), of_key(first.id), 100, None)).unwrap();
    let actions: Vec<AuditAction> = of_first.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Revoked,
            AuditAction::Rotated,
            AuditAction::Created
        ]
    );
    let revocations = EventFilter {
        action: Some(AuditAction::Revoked),
        ..EventFilter::default()
    };
    let (revoked, _) = run(keys.audit_events(&acme(), revocations, 100, None)).unwrap();
    let revoked: Vec<Uuid> = revoked.iter().map(|e| e.key_id).collect();
    assert_eq!(revoked, [first.id, second.id]);
    let first_revoked = EventFilter {
        key_id: Some(first.id),
        ..revocations
    };
    let (both, _) = run(keys.audit_events(&acme(), first_revoked, 100, None)).unwrap();
    assert_eq!(both.len(), 1);

    let globex = Tenant::parse("globex").unwrap();
    for filter in [EventFilter::default(), of_key(first.id), revocations] {
        let (other, _) = run(keys.audit_events(&globex, filter, 100, None)).unwrap();
        assert!(other.is_empty());
    }
}

fn of_key(id: Uuid) -> EventFilter {
    EventFilter {
        key_id: Some(id),
        action: None,
    }
}

#[test]
fn a_refused_key_of_the_tenant_is_named_with_its_reason_and_an_unknown_or_foreign_one_is_not() {
    use crate::domain::cache_entry::{DenyReason, RefusedKey};
    let (store, cache) = (MemStore::default(), MemCache::default());
    let keys = Keys {
        store: &store,
        cache: &cache,
    };
    let refused = |key: &str, tenant: &Tenant, at| {
        let validation = run(keys.validate(key, tenant, at, false)).unwrap();
        if let Some(fill) = &validation.fill {
            run(keys.cache.write(fill)).unwrap();
        }
        assert!(validation.refused.is_none() || validation.admitted.is_none());
        validation.refused
    };
    let named = |id, reason| Some(RefusedKey { key_id: id, reason });
    let globex = Tenant::parse("globex").unwrap();

    let (revoked, revoked_key) = create(&keys, r#"{"name": "old"}"#, NOW);
    run(keys.revoke(&acme(), revoked.id, &admin(), NOW)).unwrap();
    // From the management call's denial, then from D1 once the cache has lost it.
    assert_eq!(
        refused(revoked_key.reveal(), &acme(), NOW + 1),
        named(revoked.id, DenyReason::Revoked)
    );
    cache.places.borrow_mut().clear();
    assert_eq!(
        refused(revoked_key.reveal(), &acme(), NOW + 2),
        named(revoked.id, DenyReason::Revoked)
    );
    assert_eq!(refused(revoked_key.reveal(), &globex, NOW + 3), None);

    let expiry = NOW + 3_600_000;
    let (expiring, expiring_key) = create(
        &keys,
        &format!(
            r#"{{"name": "temp", "expiresAt": "{}"}}"#,
            crate::domain::time::to_rfc3339(expiry)
        ),
        NOW,
    );
    assert_eq!(refused(expiring_key.reveal(), &acme(), NOW), None);
    assert_eq!(
        refused(expiring_key.reveal(), &acme(), expiry),
        named(expiring.id, DenyReason::Expired)
    );

    let (rotated, old) = create(&keys, r#"{"name": "rotated"}"#, NOW);
    run(keys.rotate(&acme(), rotated.id, 0, &admin(), NOW)).unwrap();
    assert_eq!(
        refused(old.reveal(), &acme(), NOW + 1),
        named(rotated.id, DenyReason::RotatedOut)
    );

    let guess = "rk_live_00000000000000000000000000000000";
    assert_eq!(refused(guess, &acme(), NOW), None);
    assert_eq!(refused("rk_live_nothex", &acme(), NOW), None);
}
