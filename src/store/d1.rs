//! `KeyStore` on D1. Every query is a bound statement (never built from strings) and, but for
//! the lookup by hash, bound by tenant. The index each query relies on is named beside it.
//!
//! Each change to a key is one batch (one transaction) that begins with its audit event. The
//! event's insert carries the same condition on the key's row as the change's statements, and
//! writes no key, so within the transaction both see the same row: the event is written if and
//! only if the change is.

use crate::domain::{
    address::AllowList,
    audit::{AuditAction, AuditEvent, Details, EventFilter},
    cache_entry::StoredSecret,
    cursor::Cursor,
    key::KeyHash,
    model::ApiKey,
    request_body::KeyChange,
    scopes::Scopes,
    tenant::Tenant,
    time::Millis,
};
use crate::service::{KeyStore, StorageError};
use serde::Deserialize;
use std::cell::Cell;
use uuid::Uuid;
use worker::{wasm_bindgen::JsValue, D1Database, D1PreparedStatement};

const KEY_COLUMNS: &str = "id, key_prefix, name, scopes, expires_at, last_used_at, revoked_at, \
     created_at, created_by, allowed_ips";

const INSERT_KEY: &str = "INSERT INTO api_keys (id, tenant, key_prefix, name, scopes, expires_at, created_at, created_by, allowed_ips) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const INSERT_SECRET: &str =
    "INSERT INTO api_key_secrets (key_hash, key_id, tenant, valid_until) VALUES (?1, ?2, ?3, NULL)";
// api_keys_by_tenant_created
const LIST_FIRST: &str =
    "FROM api_keys WHERE tenant = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2";
const LIST_AFTER: &str = "FROM api_keys WHERE tenant = ?1 AND (created_at, id) < (?3, ?4) ORDER BY created_at DESC, id DESC LIMIT ?2";
// Primary key; the tenant condition keeps other tenants' rows out.
const GET: &str = "FROM api_keys WHERE id = ?2 AND tenant = ?1";
// Applies only to the key as the service read it (the event's `from`): a concurrent change
// makes this one change nothing, and the service reads the key again. allowed_ips can be set to
// NULL (any address), so COALESCE cannot tell "unchanged" from "cleared": ?5 says whether ?6
// replaces it, and `IS` compares it with what was read, NULL included.
const UPDATE: &str =
    "UPDATE api_keys SET name = COALESCE(?3, name), scopes = COALESCE(?4, scopes), \
     allowed_ips = CASE WHEN ?5 = 1 THEN ?6 ELSE allowed_ips END \
     WHERE id = ?2 AND tenant = ?1 AND revoked_at IS NULL \
     AND name = ?7 AND scopes = ?8 AND allowed_ips IS ?9";
const REVOKE: &str =
    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?2 AND tenant = ?1";

const EVENT_COLUMNS: &str = "id, tenant, at, action, key_id, actor, actor_ip, details";
// A creation's event: the key is new, so there is no condition.
const INSERT_EVENT: &str = "INSERT INTO audit_events \
     (id, tenant, at, action, key_id, actor, actor_ip, details) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
// A revocation's and a rotation's event: only while the key is not revoked, as their changes.
// Primary key of api_keys.
const INSERT_EVENT_IF_ACTIVE: &str = "INSERT INTO audit_events \
     (id, tenant, at, action, key_id, actor, actor_ip, details) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 \
     WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?5 AND tenant = ?2 AND revoked_at IS NULL)";
// An update's event: UPDATE's condition.
const INSERT_EVENT_IF_UNCHANGED: &str = "INSERT INTO audit_events \
     (id, tenant, at, action, key_id, actor, actor_ip, details) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 \
     WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?5 AND tenant = ?2 AND revoked_at IS NULL \
     AND name = ?9 AND scopes = ?10 AND allowed_ips IS ?11)";
// Newest first, by audit_events_by_tenant_at, _by_key_at or _by_action_at as the filter has it.
const EVENTS: &str = "FROM audit_events WHERE tenant = ?1";
const EVENTS_ORDER: &str = "ORDER BY at DESC, id DESC LIMIT ?2";
// A rotation is one batch (one transaction). Each statement re-checks that the key is not
// revoked, so a rotation that races a revocation changes nothing.
const ROTATE_PREFIX: &str =
    "UPDATE api_keys SET key_prefix = ?3 WHERE id = ?2 AND tenant = ?1 AND revoked_at IS NULL";
const ROTATE_OLD_SECRETS: &str = "UPDATE api_key_secrets \
     SET valid_until = CASE WHEN valid_until IS NULL THEN ?3 ELSE MIN(valid_until, ?4) END \
     WHERE tenant = ?1 AND key_id = ?2 \
     AND EXISTS (SELECT 1 FROM api_keys WHERE id = ?2 AND tenant = ?1 AND revoked_at IS NULL)";
// Secrets that have ended are deleted once their denial is in the cache (service::sync_cache).
// api_key_secrets_by_key, then the primary key.
const FORGET_SECRET: &str = "DELETE FROM api_key_secrets \
     WHERE tenant = ?1 AND key_id = ?2 AND key_hash = ?3 \
     AND valid_until IS NOT NULL AND valid_until <= ?4";
const ROTATE_NEW_SECRET: &str =
    "INSERT INTO api_key_secrets (key_hash, key_id, tenant, valid_until) SELECT ?3, ?2, ?1, NULL \
     WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?2 AND tenant = ?1 AND revoked_at IS NULL)";
const SECRET_COLUMNS: &str = "SELECT s.key_hash, k.id, k.tenant, k.scopes, k.expires_at, \
     k.revoked_at, s.valid_until, k.allowed_ips \
     FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id";
// api_key_secrets_by_key
const SECRETS_OF: &str = "WHERE s.tenant = ?1 AND s.key_id = ?2 ORDER BY s.key_hash";
// The edge's lookup: the primary key of api_key_secrets, then of api_keys.
const FIND_SECRET: &str = "WHERE s.key_hash = ?1";

pub struct D1Store {
    db: D1Database,
    /// Statements sent, for the request log and the tests that prove cache hits skip D1.
    pub queries: Cell<u32>,
}

#[derive(Deserialize)]
struct KeyRow {
    id: String,
    key_prefix: String,
    name: String,
    scopes: String,
    expires_at: Option<f64>,
    last_used_at: Option<f64>,
    revoked_at: Option<f64>,
    created_at: f64,
    created_by: Option<String>,
    allowed_ips: Option<String>,
}

#[derive(Deserialize)]
struct EventRow {
    id: String,
    at: f64,
    action: String,
    key_id: String,
    actor: String,
    actor_ip: Option<String>,
    details: String,
}

#[derive(Deserialize)]
struct SecretRow {
    key_hash: String,
    id: String,
    tenant: String,
    scopes: String,
    expires_at: Option<f64>,
    revoked_at: Option<f64>,
    valid_until: Option<f64>,
    allowed_ips: Option<String>,
}

pub(super) fn text(value: &str) -> JsValue {
    JsValue::from_str(value)
}

/// D1 binds JavaScript numbers; milliseconds since the epoch are well inside 2^53.
pub(super) fn number(value: Millis) -> JsValue {
    JsValue::from_f64(value as f64)
}

fn optional_text(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, text)
}

fn ms(value: Option<f64>) -> Option<Millis> {
    value.map(|v| v as Millis)
}

pub(super) fn storage_error(context: &str) -> impl Fn(worker::Error) -> StorageError + '_ {
    move |e| StorageError(format!("D1 {context}: {e}"))
}

fn corrupt(what: &str) -> StorageError {
    StorageError(format!("D1 row with an invalid {what}"))
}

/// NULL is any address; anything else must be a list this service wrote.
fn allow_list(stored: Option<&str>) -> Result<Option<AllowList>, StorageError> {
    stored
        .map(|text| AllowList::from_canonical(text).ok_or_else(|| corrupt("allowed_ips")))
        .transpose()
}

impl KeyRow {
    fn into_key(self) -> Result<ApiKey, StorageError> {
        Ok(ApiKey {
            id: Uuid::parse_str(&self.id).map_err(|_| corrupt("id"))?,
            key_prefix: self.key_prefix,
            name: self.name,
            scopes: Scopes::parse(&self.scopes).map_err(|_| corrupt("scopes"))?,
            expires_at: ms(self.expires_at),
            last_used_at: ms(self.last_used_at),
            revoked_at: ms(self.revoked_at),
            created_at: self.created_at as Millis,
            created_by: self.created_by,
            allowed_ips: allow_list(self.allowed_ips.as_deref())?,
        })
    }
}

impl EventRow {
    fn into_event(self) -> Result<AuditEvent, StorageError> {
        Ok(AuditEvent {
            id: Uuid::parse_str(&self.id).map_err(|_| corrupt("event id"))?,
            at: self.at as Millis,
            action: AuditAction::parse(&self.action).ok_or_else(|| corrupt("action"))?,
            key_id: Uuid::parse_str(&self.key_id).map_err(|_| corrupt("key id"))?,
            actor: self.actor,
            actor_ip: self.actor_ip,
            details: Details::from_stored(self.details).ok_or_else(|| corrupt("details"))?,
        })
    }
}

impl SecretRow {
    fn into_secret(self) -> Result<(KeyHash, StoredSecret), StorageError> {
        let secret = StoredSecret {
            key_id: Uuid::parse_str(&self.id).map_err(|_| corrupt("id"))?,
            tenant: self.tenant,
            scopes: Scopes::parse(&self.scopes).map_err(|_| corrupt("scopes"))?,
            expires_at: ms(self.expires_at),
            revoked_at: ms(self.revoked_at),
            valid_until: ms(self.valid_until),
            allowed_ips: allow_list(self.allowed_ips.as_deref())?,
        };
        Ok((KeyHash::from_stored(self.key_hash), secret))
    }
}

impl D1Store {
    pub fn new(db: D1Database) -> D1Store {
        D1Store {
            db,
            queries: Cell::new(0),
        }
    }

    pub(super) fn db(&self) -> &D1Database {
        &self.db
    }

    pub(super) fn statement(
        &self,
        sql: &str,
        values: &[JsValue],
    ) -> Result<D1PreparedStatement, StorageError> {
        self.queries.set(self.queries.get() + 1);
        self.db
            .prepare(sql)
            .bind(values)
            .map_err(storage_error("bind"))
    }

    pub(super) async fn changes(
        &self,
        sql: &str,
        values: &[JsValue],
    ) -> Result<usize, StorageError> {
        let result = self
            .statement(sql, values)?
            .run()
            .await
            .map_err(storage_error("run"))?;
        Ok(result
            .meta()
            .ok()
            .flatten()
            .and_then(|m| m.changes)
            .unwrap_or(0))
    }

    pub(super) async fn rows<T: for<'de> Deserialize<'de>>(
        &self,
        sql: &str,
        values: &[JsValue],
    ) -> Result<Vec<T>, StorageError> {
        let result = self
            .statement(sql, values)?
            .all()
            .await
            .map_err(storage_error("query"))?;
        if let Some(error) = result.error() {
            return Err(StorageError(format!("D1 query: {error}")));
        }
        result.results().map_err(storage_error("rows"))
    }

    /// The event's values, in `EVENT_COLUMNS` order (?1 to ?8).
    fn event_values(tenant: &Tenant, event: &AuditEvent) -> Vec<JsValue> {
        vec![
            text(&event.id.to_string()),
            text(tenant.as_str()),
            number(event.at),
            text(event.action.as_str()),
            text(&event.key_id.to_string()),
            text(&event.actor),
            optional_text(event.actor_ip.as_deref()),
            text(event.details.as_str()),
        ]
    }

    /// Runs a batch whose first statement is a change's event; the results of the others.
    async fn change(
        &self,
        what: &str,
        statements: Vec<D1PreparedStatement>,
    ) -> Result<Vec<Option<usize>>, StorageError> {
        let results = self
            .db
            .batch(statements)
            .await
            .map_err(storage_error(what))?;
        Ok(results
            .iter()
            .skip(1)
            .map(|r| r.meta().ok().flatten().and_then(|m| m.changes))
            .collect())
    }

    async fn secrets(
        &self,
        filter: &str,
        values: &[JsValue],
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError> {
        let rows: Vec<SecretRow> = self
            .rows(&format!("{SECRET_COLUMNS} {filter}"), values)
            .await?;
        rows.into_iter().map(SecretRow::into_secret).collect()
    }
}

impl KeyStore for D1Store {
    async fn insert(
        &self,
        tenant: &Tenant,
        key: &ApiKey,
        hash: &KeyHash,
        event: &AuditEvent,
    ) -> Result<(), StorageError> {
        let id = key.id.to_string();
        let allowed_ips = key.allowed_ips.as_ref().map(ToString::to_string);
        let insert_key = self.statement(
            INSERT_KEY,
            &[
                text(&id),
                text(tenant.as_str()),
                text(&key.key_prefix),
                text(&key.name),
                text(&key.scopes.to_string()),
                key.expires_at.map_or(JsValue::NULL, number),
                number(key.created_at),
                optional_text(key.created_by.as_deref()),
                optional_text(allowed_ips.as_deref()),
            ],
        )?;
        let insert_secret = self.statement(
            INSERT_SECRET,
            &[text(hash.as_str()), text(&id), text(tenant.as_str())],
        )?;
        let insert_event = self.statement(INSERT_EVENT, &D1Store::event_values(tenant, event))?;
        self.change("insert", vec![insert_event, insert_key, insert_secret])
            .await?;
        Ok(())
    }

    async fn list(
        &self,
        tenant: &Tenant,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Vec<ApiKey>, StorageError> {
        let rows: Vec<KeyRow> = match after {
            None => {
                self.rows(
                    &format!("SELECT {KEY_COLUMNS} {LIST_FIRST}"),
                    &[text(tenant.as_str()), JsValue::from(limit)],
                )
                .await?
            }
            Some(cursor) => {
                let values = [
                    text(tenant.as_str()),
                    JsValue::from(limit),
                    number(cursor.created_at),
                    text(&cursor.id.to_string()),
                ];
                self.rows(&format!("SELECT {KEY_COLUMNS} {LIST_AFTER}"), &values)
                    .await?
            }
        };
        rows.into_iter().map(KeyRow::into_key).collect()
    }

    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Option<ApiKey>, StorageError> {
        let rows: Vec<KeyRow> = self
            .rows(
                &format!("SELECT {KEY_COLUMNS} {GET}"),
                &[text(tenant.as_str()), text(&id.to_string())],
            )
            .await?;
        rows.into_iter().next().map(KeyRow::into_key).transpose()
    }

    async fn update(
        &self,
        tenant: &Tenant,
        before: &ApiKey,
        change: &KeyChange,
        event: &AuditEvent,
    ) -> Result<bool, StorageError> {
        let scopes = change.scopes.map(|s| s.to_string());
        let allowed_ips = change
            .allowed_ips
            .as_ref()
            .map(|list| list.as_ref().map(ToString::to_string));
        let before_ips = before.allowed_ips.as_ref().map(ToString::to_string);
        let (before_name, before_scopes, before_ips) = (
            text(&before.name),
            text(&before.scopes.to_string()),
            optional_text(before_ips.as_deref()),
        );
        let mut event_values = D1Store::event_values(tenant, event);
        event_values.extend([
            before_name.clone(),
            before_scopes.clone(),
            before_ips.clone(),
        ]);
        let values = [
            text(tenant.as_str()),
            text(&before.id.to_string()),
            optional_text(change.name.as_deref()),
            optional_text(scopes.as_deref()),
            JsValue::from_f64(if allowed_ips.is_some() { 1.0 } else { 0.0 }),
            optional_text(allowed_ips.flatten().as_deref()),
            before_name,
            before_scopes,
            before_ips,
        ];
        let statements = vec![
            self.statement(INSERT_EVENT_IF_UNCHANGED, &event_values)?,
            self.statement(UPDATE, &values)?,
        ];
        Ok(self.change("update", statements).await?.first() == Some(&Some(1)))
    }

    async fn revoke(
        &self,
        tenant: &Tenant,
        id: Uuid,
        event: &AuditEvent,
    ) -> Result<(), StorageError> {
        let values = [
            text(tenant.as_str()),
            text(&id.to_string()),
            number(event.at),
        ];
        let statements = vec![
            self.statement(
                INSERT_EVENT_IF_ACTIVE,
                &D1Store::event_values(tenant, event),
            )?,
            self.statement(REVOKE, &values)?,
        ];
        self.change("revoke", statements).await?;
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
        let insert_event = self.statement(
            INSERT_EVENT_IF_ACTIVE,
            &D1Store::event_values(tenant, event),
        )?;
        let (tenant, id, now) = (text(tenant.as_str()), text(&id.to_string()), event.at);
        let statements = vec![
            insert_event,
            self.statement(
                ROTATE_PREFIX,
                &[tenant.clone(), id.clone(), text(new_prefix)],
            )?,
            self.statement(
                ROTATE_OLD_SECRETS,
                &[
                    tenant.clone(),
                    id.clone(),
                    number(old_valid_until),
                    number(now),
                ],
            )?,
            self.statement(ROTATE_NEW_SECRET, &[tenant, id, text(new_hash.as_str())])?,
        ];
        // The prefix's update tells whether the key was still active.
        Ok(self.change("rotate", statements).await?.first() == Some(&Some(1)))
    }

    async fn audit_events(
        &self,
        tenant: &Tenant,
        filter: EventFilter,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Vec<AuditEvent>, StorageError> {
        let mut values = vec![text(tenant.as_str()), JsValue::from(limit)];
        let mut sql = format!("SELECT {EVENT_COLUMNS} {EVENTS}");
        let mut condition = |sql_condition: &str, value: JsValue| {
            values.push(value);
            // Parameters ?3 on, in the order the conditions are added.
            sql.push_str(&sql_condition.replace('?', &format!("?{}", values.len())));
        };
        if let Some(id) = filter.key_id {
            condition(" AND key_id = ?", text(&id.to_string()));
        }
        if let Some(action) = filter.action {
            condition(" AND action = ?", text(action.as_str()));
        }
        if let Some(cursor) = after {
            condition(" AND (at, id) < (?", number(cursor.created_at));
            condition(", ?)", text(&cursor.id.to_string()));
        }
        sql.push(' ');
        sql.push_str(EVENTS_ORDER);
        let rows: Vec<EventRow> = self.rows(&sql, &values).await?;
        rows.into_iter().map(EventRow::into_event).collect()
    }

    async fn forget(
        &self,
        tenant: &Tenant,
        id: Uuid,
        hashes: &[KeyHash],
        now: Millis,
    ) -> Result<(), StorageError> {
        let (tenant, id) = (text(tenant.as_str()), text(&id.to_string()));
        let statements = hashes
            .iter()
            .map(|hash| {
                self.statement(
                    FORGET_SECRET,
                    &[tenant.clone(), id.clone(), text(hash.as_str()), number(now)],
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.db
            .batch(statements)
            .await
            .map(drop)
            .map_err(storage_error("forget"))
    }

    async fn secrets_of(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError> {
        self.secrets(SECRETS_OF, &[text(tenant.as_str()), text(&id.to_string())])
            .await
    }

    async fn find_secret(&self, hash: &KeyHash) -> Result<Option<StoredSecret>, StorageError> {
        Ok(self
            .secrets(FIND_SECRET, &[text(hash.as_str())])
            .await?
            .into_iter()
            .next()
            .map(|(_, secret)| secret))
    }

    async fn find_secrets(
        &self,
        hashes: &[KeyHash],
    ) -> Result<Vec<(KeyHash, StoredSecret)>, StorageError> {
        // D1 binds at most 100 parameters a statement: lookups go 90 to a statement, all the
        // statements in one batch (one round trip).
        let statements = hashes
            .chunks(90)
            .map(|chunk| {
                let placeholders: Vec<String> =
                    (1..=chunk.len()).map(|i| format!("?{i}")).collect();
                let values: Vec<JsValue> = chunk.iter().map(|h| text(h.as_str())).collect();
                self.statement(
                    &format!(
                        "{SECRET_COLUMNS} WHERE s.key_hash IN ({})",
                        placeholders.join(", ")
                    ),
                    &values,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let results = self
            .db
            .batch(statements)
            .await
            .map_err(storage_error("find secrets"))?;
        let mut found = Vec::new();
        for result in results {
            let rows: Vec<SecretRow> = result.results().map_err(storage_error("rows"))?;
            for row in rows {
                found.push(row.into_secret()?);
            }
        }
        Ok(found)
    }
}
