//! Usage on D1: the queue consumer's writes, the usage report's reads, and the cron's removal of
//! old rows. The consumer writes a whole queue batch with three statements however many keys it
//! holds (more only past 4,000 rows a table): each statement takes its rows as one JSON array
//! parameter, read by `json_each` (D1 binds at most 100 parameters a statement, far fewer than a
//! batch has values). Rows of the consumer's statements carry their own tenant; the cron's
//! statements remove rows of every tenant by age alone.

use super::d1::{number, storage_error, text, D1Store};
use crate::domain::{
    tenant::Tenant,
    time::Millis,
    usage::{BucketRow, Fold, Granularity, LastUsed, UsageQuery, DAY_MS},
};
use crate::service::StorageError;
use serde::Deserialize;
use uuid::Uuid;
use worker::wasm_bindgen::JsValue;

/// Which of a batch's message ids are already counted (`json_each(?1)`: the ids). The primary
/// key of usage_messages.
const COUNTED: &str = "SELECT id FROM usage_messages WHERE id IN (SELECT value FROM json_each(?1))";
/// Records a batch's messages as counted, in the batch that counts them. Without OR IGNORE on
/// purpose: if another delivery of one of them was counted meanwhile, its primary key fails this
/// statement and so the whole batch (one transaction), and the queue delivers it again.
const MARK_COUNTED: &str =
    "INSERT INTO usage_messages (id, received_at) SELECT value, ?2 FROM json_each(?1)";
/// Adds each (tenant, key, hour) row of the batch to its stored row: the primary key of
/// api_key_usage. A row for a key that D1 does not know under that tenant is dropped (the
/// primary key of api_keys).
const ADD_COUNTS: &str = "INSERT INTO api_key_usage \
     (tenant, key_id, hour_start, allowed, forbidden, ip_denied, revoked, expired) \
     SELECT json_extract(value, '$.tenant'), json_extract(value, '$.keyId'), \
            json_extract(value, '$.hour'), json_extract(value, '$.counts[0]'), \
            json_extract(value, '$.counts[1]'), json_extract(value, '$.counts[2]'), \
            json_extract(value, '$.counts[3]'), json_extract(value, '$.counts[4]') \
     FROM json_each(?1) \
     WHERE EXISTS (SELECT 1 FROM api_keys k \
                   WHERE k.id = json_extract(value, '$.keyId') \
                     AND k.tenant = json_extract(value, '$.tenant')) \
     ON CONFLICT (tenant, key_id, hour_start) DO UPDATE SET \
       allowed = allowed + excluded.allowed, forbidden = forbidden + excluded.forbidden, \
       ip_denied = ip_denied + excluded.ip_denied, revoked = revoked + excluded.revoked, \
       expired = expired + excluded.expired";
/// Moves each key's last use forward, never back: a batch that arrives late (a retry, a slow
/// isolate) leaves a later use in place. The primary key of api_keys.
const MOVE_LAST_USED: &str = "UPDATE api_keys \
     SET last_used_at = u.at, last_used_ip = u.ip, last_used_country = u.country \
     FROM (SELECT json_extract(value, '$.tenant') AS tenant, \
                  json_extract(value, '$.keyId') AS key_id, json_extract(value, '$.at') AS at, \
                  json_extract(value, '$.ip') AS ip, json_extract(value, '$.country') AS country \
           FROM json_each(?1)) AS u \
     WHERE api_keys.id = u.key_id AND api_keys.tenant = u.tenant \
       AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < u.at)";

// The report. Primary key of api_keys: the key, and whether it is this tenant's at all.
const LAST_USED_OF: &str = "SELECT last_used_at, last_used_ip, last_used_country \
     FROM api_keys WHERE id = ?2 AND tenant = ?1";
// Primary key of api_key_usage: one key's hours in [?3, ?4).
const HOURS: &str = "SELECT hour_start AS start, allowed, forbidden, ip_denied, revoked, expired \
     FROM api_key_usage \
     WHERE tenant = ?1 AND key_id = ?2 AND hour_start >= ?3 AND hour_start < ?4 \
     ORDER BY hour_start";
// The same rows summed per UTC day (?5: a day in milliseconds).
const DAYS: &str = "SELECT hour_start - hour_start % ?5 AS start, SUM(allowed) AS allowed, \
     SUM(forbidden) AS forbidden, SUM(ip_denied) AS ip_denied, SUM(revoked) AS revoked, \
     SUM(expired) AS expired \
     FROM api_key_usage \
     WHERE tenant = ?1 AND key_id = ?2 AND hour_start >= ?3 AND hour_start < ?4 \
     GROUP BY 1 ORDER BY 1";

// The cron removes rows in slices (?2 rows a statement), so that no statement runs long
// however much has piled up: api_key_usage_by_hour, then the primary key.
const PRUNE_HOURS: &str = "DELETE FROM api_key_usage WHERE (tenant, key_id, hour_start) IN \
     (SELECT tenant, key_id, hour_start FROM api_key_usage WHERE hour_start < ?1 LIMIT ?2)";
// usage_messages_by_time, then the primary key.
const PRUNE_MESSAGES: &str = "DELETE FROM usage_messages WHERE id IN \
     (SELECT id FROM usage_messages WHERE received_at < ?1 LIMIT ?2)";
const PRUNE_SLICE: u32 = 10_000;
/// D1 takes a bound value of at most 2 MB. A row is at most about 230 bytes of JSON, so a
/// statement takes at most this many (under 1 MB); a queue batch of 100 full messages (50,000
/// rows) becomes 13 statements a table, still in one D1 batch.
const ROWS_PER_STATEMENT: usize = 4_000;
/// At most this many slices a table a run: a million rows, far more than a day brings.
const PRUNE_SLICES: u32 = 100;

#[derive(Deserialize)]
struct LastUsedRow {
    last_used_at: Option<f64>,
    last_used_ip: Option<String>,
    last_used_country: Option<String>,
}

#[derive(Deserialize)]
struct BucketSql {
    start: f64,
    allowed: f64,
    forbidden: f64,
    ip_denied: f64,
    revoked: f64,
    expired: f64,
}

#[derive(Deserialize)]
struct IdRow {
    id: String,
}

/// What one consumer batch cost D1, for its log line and the benchmark.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub statements: usize,
    pub rows: usize,
}

fn json<T: serde::Serialize>(value: &T) -> Result<JsValue, StorageError> {
    serde_json::to_string(value)
        .map(|json| text(&json))
        .map_err(|e| StorageError(format!("encode: {e}")))
}

impl D1Store {
    /// Those of `ids` (the messages of one queue batch) already counted.
    pub async fn counted_messages(&self, ids: &[String]) -> Result<Vec<String>, StorageError> {
        let rows: Vec<IdRow> = self.rows(COUNTED, &[json(&ids)?]).await?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    }

    /// Counts a queue batch in one D1 batch (one transaction): marks its messages counted, adds
    /// its hourly rows, and moves its keys' last use.
    pub async fn add_usage(
        &self,
        ids: &[String],
        fold: &Fold,
        now: Millis,
    ) -> Result<Written, StorageError> {
        let mut statements = vec![self.statement(MARK_COUNTED, &[json(&ids)?, number(now)])?];
        for rows in fold.counts.chunks(ROWS_PER_STATEMENT) {
            statements.push(self.statement(ADD_COUNTS, &[json(&rows)?])?);
        }
        for rows in fold.last.chunks(ROWS_PER_STATEMENT) {
            statements.push(self.statement(MOVE_LAST_USED, &[json(&rows)?])?);
        }
        let count = statements.len();
        let results = self
            .db()
            .batch(statements)
            .await
            .map_err(storage_error("usage"))?;
        let rows = results
            .iter()
            .filter_map(|r| r.meta().ok().flatten())
            .filter_map(|m| m.rows_written)
            .sum();
        Ok(Written {
            statements: count,
            rows,
        })
    }

    /// The key's last use and its buckets in the query's range, read in one round trip; `None`
    /// when the tenant has no such key.
    pub async fn usage_report(
        &self,
        tenant: &Tenant,
        id: Uuid,
        query: &UsageQuery,
    ) -> Result<Option<(LastUsed, Vec<BucketRow>)>, StorageError> {
        let (tenant, id) = (text(tenant.as_str()), text(&id.to_string()));
        let range = [
            tenant.clone(),
            id.clone(),
            number(query.from),
            number(query.to),
        ];
        let buckets = match query.granularity {
            Granularity::Hour => self.statement(HOURS, &range)?,
            Granularity::Day => {
                let mut values = range.to_vec();
                values.push(number(DAY_MS));
                self.statement(DAYS, &values)?
            }
        };
        let results = self
            .db()
            .batch(vec![self.statement(LAST_USED_OF, &[tenant, id])?, buckets])
            .await
            .map_err(storage_error("usage report"))?;
        let [key, buckets] = results.as_slice() else {
            return Err(StorageError("D1 usage report: two results expected".into()));
        };
        let Some(key) = key
            .results::<LastUsedRow>()
            .map_err(storage_error("usage report"))?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let rows = buckets
            .results::<BucketSql>()
            .map_err(storage_error("usage report"))?
            .into_iter()
            .map(|row| BucketRow {
                start: row.start as Millis,
                counts: [
                    row.allowed as u64,
                    row.forbidden as u64,
                    row.ip_denied as u64,
                    row.revoked as u64,
                    row.expired as u64,
                ],
            })
            .collect();
        let last = LastUsed {
            at: key.last_used_at.map(|at| at as Millis),
            ip: key.last_used_ip,
            country: key.last_used_country,
        };
        Ok(Some((last, rows)))
    }

    /// Removes hourly rows that started before `hours_before` and message ids received before
    /// `messages_before`; returns how many of each.
    pub async fn prune_usage(
        &self,
        hours_before: Millis,
        messages_before: Millis,
    ) -> Result<(usize, usize), StorageError> {
        Ok((
            self.prune(PRUNE_HOURS, hours_before).await?,
            self.prune(PRUNE_MESSAGES, messages_before).await?,
        ))
    }

    async fn prune(&self, sql: &str, before: Millis) -> Result<usize, StorageError> {
        let mut removed = 0;
        for _ in 0..PRUNE_SLICES {
            let changed = self
                .changes(sql, &[number(before), JsValue::from(PRUNE_SLICE)])
                .await?;
            removed += changed;
            if changed < PRUNE_SLICE as usize {
                break;
            }
        }
        Ok(removed)
    }
}
