//! Usage per key: what each keyed request counts as, how an isolate gathers the counts before it
//! sends them on the queue, how the consumer folds a queue batch into D1's rows, and the usage
//! report's query and answer. Pure: the Worker glue sends, receives and stores.
//!
//! Counts are kept per (key, tenant, UTC hour, outcome), with the last (time, IP, country) the
//! key was used from. An isolate gathers them for about a second and sends them as a few queue
//! messages; the consumer sums the messages of a batch and writes each table once per batch.

use super::cache_entry::DenyReason;
use super::time::{to_rfc3339, Millis};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use uuid::Uuid;

pub const HOUR_MS: Millis = 3_600_000;
pub const DAY_MS: Millis = 24 * HOUR_MS;

/// What a request whose key resolved to a key of the Host's tenant counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// The key lacks the scope the request needs.
    Forbidden,
    /// The client's address is outside the key's allow-list.
    IpDenied,
    Revoked,
    /// Past the key's `expiresAt`, or a secret that a rotation ended.
    Expired,
}

impl Outcome {
    /// Every outcome, in the order of the count arrays (`Counts`, the message's `counts`).
    pub const ALL: [Outcome; 5] = [
        Outcome::Allowed,
        Outcome::Forbidden,
        Outcome::IpDenied,
        Outcome::Revoked,
        Outcome::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Forbidden => "forbidden",
            Outcome::IpDenied => "ipDenied",
            Outcome::Revoked => "revoked",
            Outcome::Expired => "expired",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the key itself was good: only then does the request move `lastUsed*`. A refused
    /// attempt is counted, but is no use of the key.
    pub fn uses_the_key(self) -> bool {
        matches!(self, Outcome::Allowed | Outcome::Forbidden)
    }
}

impl From<DenyReason> for Outcome {
    fn from(reason: DenyReason) -> Outcome {
        match reason {
            DenyReason::Revoked => Outcome::Revoked,
            // A rotated-out secret is one whose validity ran out: to its key's owner, expired.
            DenyReason::Expired | DenyReason::RotatedOut => Outcome::Expired,
        }
    }
}

/// One count per outcome, in `Outcome::ALL` order.
pub type Counts = [u64; 5];

pub fn hour_start(at: Millis) -> Millis {
    at - at.rem_euclid(HOUR_MS)
}

/// The client's address as the edge stores it: a canonical IPv4 or IPv6 text, or nothing when
/// the header does not hold one address.
pub fn client_ip(header: Option<&str>) -> Option<String> {
    header?
        .trim()
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// `request.cf.country`: two upper-case letters or digits (`XX` unknown, `T1` Tor), else nothing.
pub fn country(value: Option<&str>) -> Option<String> {
    let value = value?;
    (value.len() == 2
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    .then(|| value.to_string())
}

// ---------------------------------------------------------------------------------------------
// The queue message

/// One queue message: counts and last uses, at most `ROWS_PER_MESSAGE` rows in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageMessage {
    pub counts: Vec<CountRow>,
    pub last: Vec<LastUse>,
}

/// The counts of one key in one UTC hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountRow {
    pub key_id: Uuid,
    pub tenant: String,
    /// The hour's start, in milliseconds.
    pub hour: Millis,
    pub counts: Counts,
}

/// The last request that used a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastUse {
    pub key_id: Uuid,
    pub tenant: String,
    pub at: Millis,
    pub ip: Option<String>,
    pub country: Option<String>,
}

/// Queues takes messages of up to 128 KB, and batches of up to 100 messages and 256 KB. A row
/// of either kind is at most about 230 bytes of JSON (a 63-character tenant, an IPv6 address,
/// ten-digit counts; a test holds this), so 500 rows are under 120 KB ...
pub const ROWS_PER_MESSAGE: usize = 500;
/// ... and two such messages are one `sendBatch` under 256 KB (and under its 100 messages).
/// Few large messages rather than many small ones: Queues' throughput limit, its billing and
/// the consumer's record of counted messages all go by the message.
pub const MESSAGES_PER_SEND: usize = 2;
const _: () = assert!(MESSAGES_PER_SEND <= 100);
/// A buffer this large is sent at once rather than at the end of its second: it is what one
/// `sendBatch` carries, so a burst of many keys costs sends, never unbounded memory.
pub const FLUSH_ROWS: usize = ROWS_PER_MESSAGE * MESSAGES_PER_SEND;
/// An isolate sends what it gathered at most about this often.
pub const FLUSH_INTERVAL_MS: Millis = 1_000;
/// A scheduled send this late is taken as lost, and the next use schedules another.
pub const OVERDUE_SEND_MS: Millis = 10_000;

// ---------------------------------------------------------------------------------------------
// The isolate's buffer

/// One counted request.
#[derive(Clone, Copy)]
pub struct Use<'a> {
    pub key_id: Uuid,
    pub tenant: &'a str,
    pub outcome: Outcome,
    pub at: Millis,
    pub client: Option<&'a str>,
    /// `request.cf.country`, asked for only when the buffer needs it: for an outcome that moves
    /// `lastUsed*`, the first time the key is seen since the last send or from a new address.
    /// Reading `request.cf` makes the runtime build the whole `cf` object.
    pub country: &'a dyn Fn() -> Option<String>,
}

/// What the caller should do after recording a use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// A send is already due; nothing to do.
    Pending,
    /// Nothing is due: send in this many milliseconds (and call `take_scheduled` then).
    After(Millis),
    /// The buffer is full: send now (`take_full`), whatever else is due.
    Now,
}

/// The counts an isolate has gathered and not yet sent. Keyed by the key's id alone: ids are
/// random UUIDs, unique across tenants, and a use is recorded only for a key of the Host's
/// tenant, so the id decides the tenant, which is kept beside the counts. A repeated key then
/// costs no allocation.
#[derive(Debug, Default)]
pub struct UsageBuffer {
    counts: HashMap<(Uuid, Millis), (String, Counts)>,
    last: HashMap<Uuid, LastUse>,
    /// When the delayed send that is scheduled, if any, is due: at most one is, so sends are a
    /// second apart.
    scheduled: Option<Millis>,
    requests: u64,
}

impl UsageBuffer {
    pub fn record(&mut self, usage: Use<'_>) -> Flush {
        let hour = hour_start(usage.at);
        let (_, counts) = self
            .counts
            .entry((usage.key_id, hour))
            .or_insert_with(|| (usage.tenant.to_string(), Counts::default()));
        counts[usage.outcome.index()] = counts[usage.outcome.index()].saturating_add(1);
        self.requests += 1;
        if usage.outcome.uses_the_key() {
            match self.last.get_mut(&usage.key_id) {
                Some(last) if last.at > usage.at => {}
                // The same address is in the same place: its country is already known. The
                // address as sent is nearly always the canonical text already, which spares
                // parsing and formatting it on each request of a busy key.
                Some(last) if last.ip.as_deref() == usage.client.map(str::trim) => {
                    last.at = usage.at
                }
                Some(last) => {
                    let ip = client_ip(usage.client);
                    if last.ip != ip {
                        last.ip = ip;
                        last.country = country((usage.country)().as_deref());
                    }
                    last.at = usage.at;
                }
                None => {
                    let last = LastUse {
                        key_id: usage.key_id,
                        tenant: usage.tenant.to_string(),
                        at: usage.at,
                        ip: client_ip(usage.client),
                        country: country((usage.country)().as_deref()),
                    };
                    self.last.insert(usage.key_id, last);
                }
            }
        }
        if self.rows() >= FLUSH_ROWS {
            Flush::Now
        } else if self
            .scheduled
            .is_some_and(|due| usage.at < due + OVERDUE_SEND_MS)
        {
            Flush::Pending
        } else {
            // None is scheduled, or the one that is never ran (the runtime may cancel a
            // `waitUntil` task): without a new one, this isolate's counts would wait for a full
            // buffer that a quiet isolate never fills.
            self.scheduled = Some(usage.at + FLUSH_INTERVAL_MS);
            Flush::After(FLUSH_INTERVAL_MS)
        }
    }

    /// Rows the buffer would send now.
    pub fn rows(&self) -> usize {
        self.counts.len() + self.last.len()
    }

    /// For the send that `Flush::After` scheduled: everything, and the next use schedules anew.
    pub fn take_scheduled(&mut self) -> Taken {
        self.scheduled = None;
        self.take()
    }

    /// For a send that `Flush::Now` asked for: everything; the scheduled send, if any, still
    /// comes and takes what has gathered by then.
    pub fn take_full(&mut self) -> Taken {
        self.take()
    }

    fn take(&mut self) -> Taken {
        let mut rows = self
            .counts
            .drain()
            .map(|((key_id, hour), (tenant, counts))| {
                Row::Count(CountRow {
                    key_id,
                    tenant,
                    hour,
                    counts,
                })
            })
            .chain(self.last.drain().map(|(_, last)| Row::Last(last)))
            .collect::<Vec<_>>();
        let requests = std::mem::take(&mut self.requests);
        let mut messages = Vec::new();
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(ROWS_PER_MESSAGE));
            let mut message = UsageMessage::default();
            for row in rows {
                match row {
                    Row::Count(count) => message.counts.push(count),
                    Row::Last(last) => message.last.push(last),
                }
            }
            messages.push(message);
            rows = rest;
        }
        Taken { messages, requests }
    }
}

enum Row {
    Count(CountRow),
    Last(LastUse),
}

/// What a send carries: messages, in groups of at most `MESSAGES_PER_SEND` per `sendBatch`.
#[derive(Debug, Default)]
pub struct Taken {
    pub messages: Vec<UsageMessage>,
    /// How many requests these counts stand for, for the log line of a failed send.
    pub requests: u64,
}

impl Taken {
    pub fn sends(&self) -> impl Iterator<Item = &[UsageMessage]> {
        self.messages.chunks(MESSAGES_PER_SEND)
    }
}

// ---------------------------------------------------------------------------------------------
// The consumer's fold

/// A queue batch summed: one row per (tenant, key, hour), and one last use per (tenant, key),
/// the latest. Each becomes one statement over all its rows.
#[derive(Debug, Default, PartialEq)]
pub struct Fold {
    pub counts: Vec<CountRow>,
    pub last: Vec<LastUse>,
}

pub fn fold(messages: impl IntoIterator<Item = UsageMessage>) -> Fold {
    let mut counts: HashMap<(String, Uuid, Millis), Counts> = HashMap::new();
    let mut last: HashMap<(String, Uuid), LastUse> = HashMap::new();
    for message in messages {
        for row in message.counts {
            let sum = counts
                .entry((row.tenant, row.key_id, row.hour))
                .or_default();
            for (total, count) in sum.iter_mut().zip(row.counts) {
                *total = total.saturating_add(count);
            }
        }
        for row in message.last {
            match last.get(&(row.tenant.clone(), row.key_id)) {
                Some(known) if known.at >= row.at => {}
                _ => {
                    last.insert((row.tenant.clone(), row.key_id), row);
                }
            }
        }
    }
    // In no particular order: each statement takes its rows as a set. (Sorting them would add
    // about 30 KB of sort code to the wasm.)
    Fold {
        counts: counts
            .into_iter()
            .filter(|(_, counts)| counts.iter().any(|&c| c > 0))
            .map(|((tenant, key_id, hour), counts)| CountRow {
                key_id,
                tenant,
                hour,
                counts,
            })
            .collect(),
        last: last.into_values().collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The report: `GET /api/v1/api-keys/{id}/usage`

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn bucket_ms(self) -> Millis {
        match self {
            Granularity::Hour => HOUR_MS,
            Granularity::Day => DAY_MS,
        }
    }

    /// The longest range one report covers.
    fn max_span_ms(self) -> Millis {
        match self {
            Granularity::Hour => 31 * DAY_MS,
            Granularity::Day => 400 * DAY_MS,
        }
    }
}

/// Without `from` or `to`, a report covers this much.
pub const DEFAULT_SPAN_MS: Millis = 30 * DAY_MS;

/// A report's range: `from` rounded down and `to` rounded up to whole buckets (UTC hours or
/// days), so that the buckets at both ends are complete; buckets start in `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub granularity: Granularity,
    pub from: Millis,
    pub to: Millis,
}

/// A query parameter the report refuses, with the message for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidQuery {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidQuery {
    InvalidQuery {
        field,
        message: message.into(),
    }
}

impl UsageQuery {
    /// From the query's pairs (the last of a repeated name counts; unknown names are ignored,
    /// as on the list). Defaults: `day`, and the 30 days up to `now` (or up to `to`).
    pub fn parse(pairs: &[(String, String)], now: Millis) -> Result<UsageQuery, InvalidQuery> {
        let (mut granularity, mut from, mut to) = (Granularity::Day, None, None);
        for (name, value) in pairs {
            match name.as_str() {
                "granularity" => {
                    granularity = match value.as_str() {
                        "hour" => Granularity::Hour,
                        "day" => Granularity::Day,
                        _ => {
                            return Err(invalid("granularity", "granularity must be hour or day."))
                        }
                    }
                }
                "from" => from = Some(time(value, "from")?),
                "to" => to = Some(time(value, "to")?),
                _ => {}
            }
        }
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - DEFAULT_SPAN_MS);
        if to <= from {
            return Err(invalid("to", "to must be after from."));
        }
        if to - from > granularity.max_span_ms() {
            return Err(invalid(
                "from",
                "A report covers at most 31 days by hour or 400 days by day.",
            ));
        }
        let bucket = granularity.bucket_ms();
        Ok(UsageQuery {
            granularity,
            from: from - from.rem_euclid(bucket),
            to: to + (bucket - to.rem_euclid(bucket)) % bucket,
        })
    }
}

fn time(value: &str, field: &'static str) -> Result<Millis, InvalidQuery> {
    // From the epoch (usage has no earlier time) to before year 9999, so that a bound rounded
    // up to a whole day still prints as RFC 3339's four-digit year.
    const UNTIL: Millis = 253_370_764_800_000; // 9999-01-01T00:00:00Z
    super::time::parse_rfc3339(value)
        .filter(|at| (0..UNTIL).contains(at))
        .ok_or_else(|| {
            invalid(
                field,
                format!(
                    "{field} must be an RFC 3339 date-time from 1970 to 9998, such as \
                     2026-11-01T00:00:00Z."
                ),
            )
        })
}

/// One bucket's counts as D1 sums them.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketRow {
    pub start: Millis,
    pub counts: Counts,
}

/// What D1 knows of the key's last use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastUsed {
    pub at: Option<Millis>,
    pub ip: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    pub key_id: String,
    pub granularity: &'static str,
    pub from: String,
    pub to: String,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub last_used_country: Option<String>,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub start: String,
    pub allowed: u64,
    pub forbidden: u64,
    pub ip_denied: u64,
    pub revoked: u64,
    pub expired: u64,
}

/// The report: buckets in the order of `rows`, which D1 gives oldest first (its ORDER BY
/// start), empty ones left out.
pub fn report(
    key_id: Uuid,
    query: &UsageQuery,
    last: LastUsed,
    rows: Vec<BucketRow>,
) -> UsageResponse {
    UsageResponse {
        key_id: key_id.to_string(),
        granularity: query.granularity.as_str(),
        from: to_rfc3339(query.from),
        to: to_rfc3339(query.to),
        last_used_at: last.at.map(to_rfc3339),
        last_used_ip: last.ip,
        last_used_country: last.country,
        buckets: rows
            .into_iter()
            .filter(|row| row.counts.iter().any(|&c| c > 0))
            .map(|row| {
                let [allowed, forbidden, ip_denied, revoked, expired] = row.counts;
                Bucket {
                    start: to_rfc3339(row.start),
                    allowed,
                    forbidden,
                    ip_denied,
                    revoked,
                    expired,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_rfc3339;

    /// 2023-11-14T22:13:20Z
    const NOW: Millis = 1_700_000_000_000;

    fn key(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn used(key_id: Uuid, outcome: Outcome, at: Millis) -> Use<'static> {
        Use {
            key_id,
            tenant: "acme",
            outcome,
            at,
            client: Some("203.0.113.7"),
            country: &|| Some("DE".into()),
        }
    }

    fn sent(buffer: &mut UsageBuffer) -> Fold {
        fold(buffer.take_scheduled().messages)
    }

    #[test]
    fn a_scheduled_send_that_never_ran_is_scheduled_again() {
        let mut buffer = UsageBuffer::default();
        let record =
            |buffer: &mut UsageBuffer, at| buffer.record(used(key(1), Outcome::Allowed, at));
        assert_eq!(record(&mut buffer, NOW), Flush::After(FLUSH_INTERVAL_MS));
        assert_eq!(record(&mut buffer, NOW + 500), Flush::Pending);
        let due = NOW + FLUSH_INTERVAL_MS;
        assert_eq!(
            record(&mut buffer, due + OVERDUE_SEND_MS - 1),
            Flush::Pending
        );
        // Its task was cancelled: take_scheduled never came.
        assert_eq!(
            record(&mut buffer, due + OVERDUE_SEND_MS),
            Flush::After(FLUSH_INTERVAL_MS)
        );
        assert_eq!(sent(&mut buffer).counts[0].counts[0], 4);
        assert_eq!(
            record(&mut buffer, due + OVERDUE_SEND_MS + 1),
            Flush::After(FLUSH_INTERVAL_MS)
        );
    }

    #[test]
    fn the_country_is_asked_for_only_for_a_new_key_or_a_new_address() {
        let asked = std::cell::Cell::new(0);
        let country = || {
            asked.set(asked.get() + 1);
            Some("DE".to_string())
        };
        let mut buffer = UsageBuffer::default();
        let mut record = |k, outcome, at, client| {
            buffer.record(Use {
                client,
                country: &country,
                ..used(key(k), outcome, at)
            });
        };
        record(1, Outcome::Allowed, NOW, Some("203.0.113.7"));
        record(1, Outcome::Allowed, NOW + 1, Some("203.0.113.7"));
        record(1, Outcome::Revoked, NOW + 2, Some("198.51.100.1"));
        assert_eq!(
            asked.get(),
            1,
            "the same address, and a refusal, ask nothing"
        );
        record(1, Outcome::Forbidden, NOW + 3, Some("198.51.100.1"));
        record(2, Outcome::Allowed, NOW + 3, Some("198.51.100.1"));
        assert_eq!(asked.get(), 3, "a new address and a new key ask once each");
        record(2, Outcome::Allowed, NOW + 4, Some(" 198.51.100.1 "));
        record(3, Outcome::Allowed, NOW + 4, Some("2001:db8::7"));
        record(3, Outcome::Allowed, NOW + 5, Some("2001:DB8:0::7"));
        assert_eq!(
            asked.get(),
            4,
            "another spelling of the same address asks nothing"
        );
        let last = sent(&mut buffer).last;
        assert!(last.iter().all(|l| l.country.as_deref() == Some("DE")));
        assert!(last
            .iter()
            .any(|l| l.key_id == key(1) && l.ip.as_deref() == Some("198.51.100.1")));
    }

    #[test]
    fn a_buffer_counts_per_key_hour_and_outcome_and_keeps_each_keys_last_use() {
        let mut buffer = UsageBuffer::default();
        let next_hour = hour_start(NOW) + HOUR_MS;
        for (k, outcome, at) in [
            (1, Outcome::Allowed, NOW),
            (1, Outcome::Allowed, NOW + 5),
            (1, Outcome::Forbidden, NOW + 9),
            (1, Outcome::Allowed, next_hour),
            (2, Outcome::Revoked, NOW + 20),
        ] {
            buffer.record(used(key(k), outcome, at));
        }
        let fold = sent(&mut buffer);
        let mut counts: Vec<(Uuid, Millis, Counts)> = fold
            .counts
            .iter()
            .map(|r| (r.key_id, r.hour, r.counts))
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            vec![
                (key(1), hour_start(NOW), [2, 1, 0, 0, 0]),
                (key(1), next_hour, [1, 0, 0, 0, 0]),
                (key(2), hour_start(NOW), [0, 0, 0, 1, 0]),
            ]
        );
        // Only a use of a good key moves lastUsed: key 2's revoked attempt does not.
        assert_eq!(
            fold.last,
            vec![LastUse {
                key_id: key(1),
                tenant: "acme".into(),
                at: next_hour,
                ip: Some("203.0.113.7".into()),
                country: Some("DE".into()),
            }]
        );
        assert_eq!(buffer.rows(), 0);
    }

    #[test]
    fn an_isolate_schedules_one_send_a_second_and_sends_at_once_when_full() {
        let mut buffer = UsageBuffer::default();
        assert_eq!(
            buffer.record(used(key(1), Outcome::Allowed, NOW)),
            Flush::After(FLUSH_INTERVAL_MS)
        );
        assert_eq!(
            buffer.record(used(key(1), Outcome::Allowed, NOW)),
            Flush::Pending
        );
        assert_eq!(buffer.take_scheduled().requests, 2);
        assert_eq!(
            buffer.record(used(key(1), Outcome::Allowed, NOW + 1000)),
            Flush::After(FLUSH_INTERVAL_MS)
        );
        // A burst over many keys fills the buffer: it is sent at once, and the scheduled send
        // still comes for what gathers meanwhile.
        let mut recorded = 0;
        while buffer.record(used(
            Uuid::from_u128(recorded + 1000),
            Outcome::Allowed,
            NOW + 1001,
        )) != Flush::Now
        {
            recorded += 1;
            assert!(recorded < FLUSH_ROWS as u128, "never full");
        }
        let full = buffer.take_full();
        assert!(full.messages.len() <= MESSAGES_PER_SEND);
        assert_eq!(full.sends().count(), 1);
        assert!(full
            .messages
            .iter()
            .all(|m| m.counts.len() + m.last.len() <= ROWS_PER_MESSAGE));
        assert_eq!(
            buffer.record(used(key(1), Outcome::Allowed, NOW + 1002)),
            Flush::Pending
        );
    }

    #[test]
    fn the_largest_message_and_send_stay_within_the_queue_limits() {
        let tenant = "t".repeat(63);
        let ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
        let row = CountRow {
            key_id: Uuid::from_u128(u128::MAX),
            tenant: tenant.clone(),
            hour: 9_999_999_999_999,
            counts: [u64::from(u32::MAX); 5],
        };
        let last = LastUse {
            key_id: Uuid::from_u128(u128::MAX),
            tenant,
            at: 9_999_999_999_999,
            ip: Some(ip.into()),
            country: Some("XX".into()),
        };
        for message in [
            UsageMessage {
                counts: vec![row; ROWS_PER_MESSAGE],
                last: vec![],
            },
            UsageMessage {
                counts: vec![],
                last: vec![last; ROWS_PER_MESSAGE],
            },
        ] {
            let bytes = serde_json::to_vec(&message).unwrap().len();
            assert!(bytes < 120 * 1024, "{bytes} bytes in one message");
            assert!(
                bytes * MESSAGES_PER_SEND < 256 * 1024,
                "{bytes} bytes a message"
            );
        }
    }

    #[test]
    fn the_consumer_sums_a_batch_and_keeps_the_latest_use() {
        let message = |counts: Counts, at: Millis, ip: &str| UsageMessage {
            counts: vec![CountRow {
                key_id: key(1),
                tenant: "acme".into(),
                hour: hour_start(NOW),
                counts,
            }],
            last: vec![LastUse {
                key_id: key(1),
                tenant: "acme".into(),
                at,
                ip: Some(ip.into()),
                country: None,
            }],
        };
        // Two isolates' messages, the later use first.
        let fold = fold([
            message([5, 2, 0, 0, 0], NOW + 10, "203.0.113.9"),
            message([1, 0, 0, 1, 1], NOW, "203.0.113.1"),
        ]);
        assert_eq!(fold.counts.len(), 1);
        assert_eq!(fold.counts[0].counts, [6, 2, 0, 1, 1]);
        assert_eq!(fold.last.len(), 1);
        assert_eq!(
            (fold.last[0].at, fold.last[0].ip.as_deref()),
            (NOW + 10, Some("203.0.113.9"))
        );
        // The same key under another tenant is another row.
        let mut other = message([1, 0, 0, 0, 0], NOW, "203.0.113.1");
        other.counts[0].tenant = "globex".into();
        other.last[0].tenant = "globex".into();
        let fold = super::fold([message([1, 0, 0, 0, 0], NOW, "203.0.113.1"), other]);
        assert_eq!((fold.counts.len(), fold.last.len()), (2, 2));
    }

    #[test]
    fn messages_round_trip_through_json() {
        let mut buffer = UsageBuffer::default();
        buffer.record(used(key(1), Outcome::Allowed, NOW));
        buffer.record(used(key(1), Outcome::IpDenied, NOW));
        for message in buffer.take_scheduled().messages {
            let json = serde_json::to_string(&message).unwrap();
            assert_eq!(
                serde_json::from_str::<UsageMessage>(&json).unwrap(),
                message
            );
        }
    }

    #[test]
    fn client_addresses_and_countries_are_kept_only_when_well_formed() {
        assert_eq!(
            client_ip(Some("203.0.113.7")).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            client_ip(Some("2001:DB8:0:0::1")).as_deref(),
            Some("2001:db8::1")
        );
        for bad in [
            None,
            Some(""),
            Some("203.0.113.7, 10.0.0.1"),
            Some("<script>"),
        ] {
            assert_eq!(client_ip(bad), None, "{bad:?}");
        }
        assert_eq!(country(Some("DE")).as_deref(), Some("DE"));
        assert_eq!(country(Some("T1")).as_deref(), Some("T1"));
        for bad in [None, Some(""), Some("de"), Some("DEU"), Some("<b")] {
            assert_eq!(country(bad), None, "{bad:?}");
        }
    }

    fn query(text: &str) -> Result<UsageQuery, InvalidQuery> {
        UsageQuery::parse(&crate::query::pairs(text), NOW)
    }

    fn at(text: &str) -> Millis {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_report_defaults_to_the_last_30_days_by_day_in_whole_buckets() {
        let q = query("").unwrap();
        assert_eq!(q.granularity, Granularity::Day);
        assert_eq!(q.from, at("2023-10-15T00:00:00Z"));
        assert_eq!(q.to, at("2023-11-15T00:00:00Z"));
        let q =
            query("granularity=hour&from=2023-11-14T10:30:00Z&to=2023-11-14T12:00:00Z").unwrap();
        assert_eq!(
            (q.granularity, q.from, q.to),
            (
                Granularity::Hour,
                at("2023-11-14T10:00:00Z"),
                at("2023-11-14T12:00:00Z")
            )
        );
        // Offsets are read, and only `to` given means the 30 days before it.
        let q = query("to=2023-11-02T01:00:00%2B01:00").unwrap();
        assert_eq!(
            (q.from, q.to),
            (at("2023-10-03T00:00:00Z"), at("2023-11-02T00:00:00Z"))
        );
        assert_eq!(
            query("granularity=hour&from=2023-10-14T22:13:20Z")
                .unwrap()
                .to,
            at("2023-11-14T23:00:00Z")
        );
        assert_eq!(
            query("granularity=day&from=2022-10-11T00:00:00Z&unknown=1")
                .unwrap()
                .from,
            at("2022-10-11T00:00:00Z")
        );
    }

    #[test]
    fn a_report_refuses_each_bad_parameter_naming_it() {
        for (text, field) in [
            ("granularity=week", "granularity"),
            ("granularity=Hour", "granularity"),
            ("granularity=", "granularity"),
            ("from=yesterday", "from"),
            ("from=2023-11-14", "from"),
            ("to=2023-11-14T25:00:00Z", "to"),
            ("from=+999999-01-01T00:00:00Z", "from"),
            ("from=2023-11-14T00:00:00Z&to=2023-11-14T00:00:00Z", "to"),
            ("from=2023-11-15T00:00:00Z&to=2023-11-14T00:00:00Z", "to"),
            // 31 days of hours, or 400 of days, and not a millisecond more.
            ("granularity=hour&from=2023-10-14T22:13:19.999Z", "from"),
            ("granularity=day&from=2022-10-10T22:13:19Z", "from"),
            ("from=1969-12-31T23:59:59Z&to=1970-01-02T00:00:00Z", "from"),
            ("from=9998-12-01T00:00:00Z&to=9999-01-01T00:00:00Z", "to"),
        ] {
            assert_eq!(query(text).map_err(|e| e.field), Err(field), "{text}");
        }
        assert!(query("granularity=hour&from=2023-10-14T22:13:20Z").is_ok());
        assert!(query("granularity=day&from=2022-10-10T22:13:20Z").is_ok());
        let last = query("from=9998-12-01T00:00:00Z&to=9998-12-31T23:59:59.999Z").unwrap();
        assert_eq!(to_rfc3339(last.to), "9999-01-01T00:00:00Z");
    }

    #[test]
    fn a_report_keeps_d1s_oldest_first_order_and_leaves_empty_buckets_out() {
        let q =
            query("granularity=hour&from=2023-11-14T00:00:00Z&to=2023-11-15T00:00:00Z").unwrap();
        let report = report(
            key(1),
            &q,
            LastUsed {
                at: Some(NOW),
                ip: Some("203.0.113.7".into()),
                country: None,
            },
            vec![
                BucketRow {
                    start: at("2023-11-14T01:00:00Z"),
                    counts: [0, 0, 1, 2, 3],
                },
                BucketRow {
                    start: at("2023-11-14T03:00:00Z"),
                    counts: [0, 0, 0, 0, 0],
                },
                BucketRow {
                    start: at("2023-11-14T22:00:00Z"),
                    counts: [5, 2, 0, 0, 0],
                },
            ],
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "keyId": key(1).to_string(),
                "granularity": "hour",
                "from": "2023-11-14T00:00:00Z",
                "to": "2023-11-15T00:00:00Z",
                "lastUsedAt": "2023-11-14T22:13:20Z",
                "lastUsedIp": "203.0.113.7",
                "lastUsedCountry": null,
                "buckets": [
                    {"start": "2023-11-14T01:00:00Z", "allowed": 0, "forbidden": 0, "ipDenied": 1, "revoked": 2, "expired": 3},
                    {"start": "2023-11-14T22:00:00Z", "allowed": 5, "forbidden": 2, "ipDenied": 0, "revoked": 0, "expired": 0},
                ]
            })
        );
    }

    #[test]
    fn refusals_count_as_the_outcome_their_owner_knows() {
        assert_eq!(Outcome::from(DenyReason::Revoked), Outcome::Revoked);
        assert_eq!(Outcome::from(DenyReason::Expired), Outcome::Expired);
        assert_eq!(Outcome::from(DenyReason::RotatedOut), Outcome::Expired);
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            ["allowed", "forbidden", "ipDenied", "revoked", "expired"]
        );
        assert!(Outcome::ALL.iter().enumerate().all(|(i, o)| o.index() == i));
    }
}
