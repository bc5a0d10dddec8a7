//! One structured log line per request. It names the request, tenant, key id and outcome; it
//! never holds a key, a key hash or a token, because nothing here accepts one.

use serde::Serialize;
use std::cell::RefCell;
use uuid::Uuid;

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    request_id: String,
    method: String,
    /// The path without its query string, which could carry anything.
    path: String,
    tenant: Option<String>,
    key_id: Option<String>,
    subject: Option<String>,
    status: u16,
    outcome: String,
    cache: Option<&'static str>,
    d1_queries: u32,
    kv_reads: u32,
    /// The outcome this request was counted as, for a key of the Host's tenant.
    usage: Option<&'static str>,
    /// `scheduled` or `now` when this request set off its isolate's next usage send.
    usage_send: Option<&'static str>,
    /// Which code answered: `front` (the gateway's fast path, `crate::gate`, in the front
    /// Worker), `gate` (the same in the whole Worker) or `handler`.
    lane: &'static str,
    detail: Option<String>,
    ms: u64,
}

pub struct RequestLog(RefCell<Line>);

impl RequestLog {
    pub fn new(request_id: &str, method: &str, path: &str) -> RequestLog {
        RequestLog(RefCell::new(Line {
            request_id: request_id.into(),
            method: method.into(),
            path: path.into(),
            ..Line::default()
        }))
    }

    pub fn set_tenant(&self, tenant: &str) {
        self.0.borrow_mut().tenant = Some(tenant.into());
    }
    pub fn set_key(&self, id: Uuid) {
        // Written into a buffer: `to_string` would go through the formatting machinery.
        let text = id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .to_owned();
        self.0.borrow_mut().key_id = Some(text);
    }
    pub fn set_subject(&self, subject: &str) {
        self.0.borrow_mut().subject = Some(subject.chars().take(128).collect());
    }
    pub fn set_cache(&self, outcome: &'static str) {
        self.0.borrow_mut().cache = Some(outcome);
    }
    pub fn set_counters(&self, d1_queries: u32, kv_reads: u32) {
        let mut line = self.0.borrow_mut();
        (line.d1_queries, line.kv_reads) = (d1_queries, kv_reads);
    }
    pub fn set_usage(&self, outcome: &'static str, send: Option<&'static str>) {
        let mut line = self.0.borrow_mut();
        (line.usage, line.usage_send) = (Some(outcome), send);
    }
    pub fn set_lane(&self, lane: &'static str) {
        self.0.borrow_mut().lane = lane;
    }
    pub fn set_outcome(&self, status: u16, outcome: &str, detail: Option<&str>) {
        let mut line = self.0.borrow_mut();
        (line.status, line.outcome, line.detail) =
            (status, outcome.into(), detail.map(String::from));
    }

    pub fn to_json(&self, ms: u64) -> String {
        let mut line = self.0.borrow_mut();
        line.ms = ms;
        serde_json::to_string(&*line).unwrap_or_default()
    }
}
