//! Failed-authentication rate limiting per tenant and client IP, on the Workers Rate Limiting
//! binding. It protects storage, never at the cost of valid keys.
//!
//! Policy: every 401 counts one failure against the pair (Host's tenant, `CF-Connecting-IP`).
//! Past `limit` failures within the binding's period (wrangler.toml: 20 per 60 s), the request
//! is answered 429 with `Retry-After`, and the isolate then refuses that pair, until the period
//! is over, any key lookup that would reach D1 (and any session, before its signature is
//! checked). A key that the cache already grants is still admitted, and failures on one tenant
//! never count against another: integration platforms, NAT and mobile carriers put many
//! tenants' integrations behind one address. Paths that authenticate nothing (health, the
//! OpenAPI document, forwarding without a key) stay open.

use crate::domain::{tenant::Tenant, time::Millis};
use crate::error::AppError;
use crate::service::BlockedClients;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use worker::js_sys;
use worker::wasm_bindgen_futures::JsFuture;

/// The binding's period; Workers Rate Limiting accepts only 10 or 60 seconds.
const PERIOD_MS: Millis = 60_000;

thread_local! {
    static BLOCKED: RefCell<BlockedClients> = RefCell::new(BlockedClients::default());
}

/// What the limit counts: one tenant's failures from one address.
fn counted(tenant: &Tenant, client: &str) -> String {
    format!("{tenant}|{client}")
}

/// 429 for a client this isolate already knows to be blocked on this tenant.
pub fn check(tenant: &Tenant, client: Option<&str>, now: Millis) -> Result<(), AppError> {
    let Some(client) = client else { return Ok(()) };
    match BLOCKED.with(|b| b.borrow().retry_after(&counted(tenant, client), now)) {
        Some(retry_after_seconds) => Err(AppError::RateLimited {
            retry_after_seconds,
        }),
        None => Ok(()),
    }
}

/// When this isolate's block of the client on this tenant ends, if it is blocked at `now`: what
/// the front Worker tells the whole Worker when it hands a request over (`crate::gate`), since
/// the two Workers' isolates remember their blocks apart.
pub fn blocked_until(tenant: &Tenant, client: &str, now: Millis) -> Option<Millis> {
    BLOCKED.with(|b| b.borrow().until(&counted(tenant, client), now))
}

/// Remembers a block that the front Worker's isolate knows of (`blocked_until`), as if this
/// isolate had been told it by the binding. A client can only block itself this way: the pair
/// is its own Host's tenant and its own address.
pub fn note_block(tenant: &Tenant, client: &str, until: Millis, now: Millis) {
    let until = until.min(now + PERIOD_MS);
    if until > now {
        BLOCKED.with(|b| b.borrow_mut().block(&counted(tenant, client), until, now));
    }
}

#[wasm_bindgen]
extern "C" {
    /// The Rate Limiting binding, with its one call: `limit({ key })` gives `{ success }`.
    /// Bound directly so that the count can start without an await (the gateway's fast path).
    pub type Limiter;

    #[wasm_bindgen(method, catch)]
    fn limit(this: &Limiter, options: &JsValue) -> Result<js_sys::Promise, JsValue>;
}

/// A failed authentication being counted: what `outcome` needs once the binding answers.
pub struct Counting {
    counted: String,
    pub promise: js_sys::Promise,
}

/// Counts a failed authentication; turns it into 429 once the client is over the limit.
pub async fn count_failure(
    limiter: Option<Limiter>,
    tenant: &Tenant,
    client: Option<&str>,
    now: Millis,
    error: AppError,
) -> AppError {
    let Some(counting) = start_count(limiter, tenant, client) else {
        return error;
    };
    let answer = JsFuture::from(counting.promise.clone()).await;
    counting.outcome(answer, now, error)
}

/// Starts counting a failure, without an await. None when there is nothing to count against
/// (no client address, or no binding).
pub fn start_count(
    limiter: Option<Limiter>,
    tenant: &Tenant,
    client: Option<&str>,
) -> Option<Counting> {
    let (client, limiter) = (client?, limiter?);
    let counted = counted(tenant, client);
    let options = js_sys::Object::new();
    let key = JsValue::from_str(&format!("auth-failure:{counted}"));
    js_sys::Reflect::set(&options, &"key".into(), &key).ok()?;
    let promise = limiter.limit(&options).ok()?;
    Some(Counting { counted, promise })
}

impl Counting {
    /// `error`, or 429 when the binding says the client is over the limit. A binding that
    /// fails counts as under it: the limit protects storage, never at the cost of an answer.
    pub fn outcome(
        self,
        answer: Result<JsValue, JsValue>,
        now: Millis,
        error: AppError,
    ) -> AppError {
        let over = answer.is_ok_and(|outcome| {
            js_sys::Reflect::get(&outcome, &"success".into()).is_ok_and(|s| s == JsValue::FALSE)
        });
        if !over {
            return error;
        }
        BLOCKED.with(|b| b.borrow_mut().block(&self.counted, now + PERIOD_MS, now));
        AppError::RateLimited {
            retry_after_seconds: (PERIOD_MS / 1000) as u32,
        }
    }
}
