//! Usage counts on Cloudflare Queues (README, "Usage"): the isolate's buffer and its sends on
//! `USAGE_QUEUE`, the consumer that folds each queue batch into D1, and the daily removal of old
//! rows. Nothing here runs on a request's response path, and nothing here can fail a request: a
//! send that fails, or a missing binding, loses those counts and is logged (counts and reasons
//! only, never a key).

use crate::app::Isolate;
use crate::config::{missing_binding, names};
use crate::domain::time::Millis;
use crate::domain::usage::{self, Flush, Taken, UsageBuffer, UsageMessage, Use, DAY_MS};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, console_log, js_sys, Delay, MessageBatch, MessageExt};
use worker::{QueueContentType, RawMessageBuilder, SendMessage};

/// Hourly rows are kept this long (SPEC: 90 days) ...
pub const USAGE_KEPT_MS: Millis = 90 * DAY_MS;
/// ... and the ids of counted messages as long as Queues may deliver a message again: its
/// default retention period (a message is never delivered after it).
pub const COUNTED_MESSAGES_KEPT_MS: Millis = 4 * DAY_MS;

thread_local! {
    /// Lives as long as the isolate: the counts it has gathered and not yet sent. Lost if the
    /// isolate is evicted before its next send (README: a second of counts at most).
    static BUFFER: RefCell<UsageBuffer> = RefCell::new(UsageBuffer::default());
}

pub fn record(usage: Use<'_>) -> Flush {
    BUFFER.with(|buffer| buffer.borrow_mut().record(usage))
}

/// The send that `Flush::After` asked for: waits out the isolate's second, then sends whatever
/// has gathered by then.
pub async fn send_after(isolate: Rc<Isolate>, delay: Millis) {
    Delay::from(Duration::from_millis(delay.max(0) as u64)).await;
    let taken = BUFFER.with(|buffer| buffer.borrow_mut().take_scheduled());
    send(&isolate, taken).await;
}

/// The send that `Flush::Now` asked for: the buffer is full.
pub async fn send_now(isolate: Rc<Isolate>) {
    let taken = BUFFER.with(|buffer| buffer.borrow_mut().take_full());
    send(&isolate, taken).await;
}

async fn send(isolate: &Isolate, taken: Taken) {
    if taken.messages.is_empty() {
        return;
    }
    let Some(queue) = isolate.usage_queue() else {
        return not_sent(&taken, &missing_binding(names::USAGE_QUEUE));
    };
    for messages in taken.sends() {
        let batch: Result<Vec<SendMessage<JsValue>>, String> =
            messages.iter().map(message_body).collect();
        let sent = match batch {
            Ok(batch) => queue
                .send_raw_batch(batch)
                .await
                .map_err(|e| format!("sendBatch: {e}")),
            Err(error) => Err(error),
        };
        if let Err(detail) = sent {
            // The whole send's counts are lost; a retry could only pile them up behind a queue
            // that refuses them.
            return not_sent(&taken, &detail);
        }
    }
}

/// A message as a JSON object: encoded by serde_json (which the Worker has anyway) and parsed
/// by the runtime, rather than converted field by field across the wasm boundary.
fn message_body(message: &UsageMessage) -> Result<SendMessage<JsValue>, String> {
    let json = serde_json::to_string(message).map_err(|e| format!("encode: {e}"))?;
    let body = js_sys::JSON::parse(&json).map_err(|e| format!("encode: {e:?}"))?;
    Ok(RawMessageBuilder::new(body).build_with_content_type(QueueContentType::Json))
}

/// A queue message's body, read back the same way.
fn read_body(body: JsValue) -> Option<UsageMessage> {
    let json = js_sys::JSON::stringify(&body).ok()?.as_string()?;
    serde_json::from_str(&json).ok()
}

/// The log lines of this module: an event with counts, and a reason when something failed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Figures {
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    already_counted: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hour_rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d1_statements: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d1_rows_written: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_ids: Option<usize>,
}

fn log(event: &'static str, detail: Option<&str>, figures: Figures) {
    let line = serde_json::to_string(&Line {
        event,
        detail,
        figures,
    })
    .unwrap_or_default();
    if detail.is_some() {
        console_error!("{line}");
    } else {
        console_log!("{line}");
    }
}

fn not_sent(taken: &Taken, reason: &str) {
    log(
        "usage_not_sent",
        Some(reason),
        Figures {
            requests: Some(taken.requests),
            messages: Some(taken.messages.len()),
            ..Figures::default()
        },
    );
}

/// The queue's consumer: counts a batch in one D1 batch. Messages already counted (a delivery
/// repeated after its D1 batch committed) are left out; any D1 failure hands the whole batch
/// back to the queue, which delivers it again (wrangler.toml: `max_retries`).
pub async fn consume(isolate: &Isolate, batch: MessageBatch<JsValue>, now: Millis) {
    let (mut ids, mut messages, mut unreadable) = (Vec::new(), Vec::new(), 0);
    for message in batch.raw_iter() {
        match read_body(message.body()) {
            Some(body) => {
                ids.push(message.id());
                messages.push(body);
            }
            // Acknowledged with the batch: a message that cannot be read now never will be.
            None => unreadable += 1,
        }
    }
    let Some(store) = isolate.store() else {
        batch.retry_all();
        return consumer_failed(&missing_binding(names::DB));
    };
    let counted = match store.counted_messages(&ids).await {
        Ok(counted) => counted,
        Err(error) => {
            batch.retry_all();
            return consumer_failed(&error.0);
        }
    };
    let (mut fresh_ids, mut fresh) = (Vec::new(), Vec::new());
    for (id, message) in ids.into_iter().zip(messages) {
        if !counted.contains(&id) {
            fresh_ids.push(id);
            fresh.push(message);
        }
    }
    let fold = usage::fold(fresh);
    let written = if fresh_ids.is_empty() {
        Default::default()
    } else {
        match store.add_usage(&fresh_ids, &fold, now).await {
            Ok(written) => written,
            Err(error) => {
                batch.retry_all();
                return consumer_failed(&error.0);
            }
        }
    };
    log(
        "usage_batch",
        None,
        Figures {
            messages: Some(fresh_ids.len()),
            already_counted: Some(counted.len()),
            unreadable: Some(unreadable),
            hour_rows: Some(fold.counts.len()),
            keys: Some(fold.last.len()),
            // The look-up of counted ids, then the batch's own.
            d1_statements: Some(written.statements + 1),
            d1_rows_written: Some(written.rows),
            ..Figures::default()
        },
    );
}

fn consumer_failed(detail: &str) {
    log("usage_batch_failed", Some(detail), Figures::default());
}

/// The daily Cron Trigger: hourly rows past their 90 days, and ids of messages that can no
/// longer be delivered again. `now` is the trigger's scheduled time.
pub async fn prune(isolate: &Isolate, now: Millis) {
    let Some(store) = isolate.store() else {
        return log(
            "usage_prune_failed",
            Some(&missing_binding(names::DB)),
            Figures::default(),
        );
    };
    match store
        .prune_usage(now - USAGE_KEPT_MS, now - COUNTED_MESSAGES_KEPT_MS)
        .await
    {
        Ok((hours, messages)) => log(
            "usage_pruned",
            None,
            Figures {
                hour_rows: Some(hours),
                message_ids: Some(messages),
                ..Figures::default()
            },
        ),
        Err(error) => log("usage_prune_failed", Some(&error.0), Figures::default()),
    }
}
