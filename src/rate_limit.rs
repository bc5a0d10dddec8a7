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
use worker::RateLimiter;

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

/// Counts a failed authentication; turns it into 429 once the client is over the limit.
pub async fn count_failure(
    limiter: Option<RateLimiter>,
    tenant: &Tenant,
    client: Option<&str>,
    now: Millis,
    error: AppError,
) -> AppError {
    let (Some(client), Some(limiter)) = (client, limiter) else {
        return error;
    };
    let counted = counted(tenant, client);
    match limiter.limit(format!("auth-failure:{counted}")).await {
        Ok(outcome) if !outcome.success => {
            BLOCKED.with(|b| b.borrow_mut().block(&counted, now + PERIOD_MS, now));
            AppError::RateLimited {
                retry_after_seconds: (PERIOD_MS / 1000) as u32,
            }
        }
        _ => error,
    }
}
