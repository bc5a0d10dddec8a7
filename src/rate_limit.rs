//! Failed-authentication rate limiting per client IP, on the Workers Rate Limiting binding.
//!
//! Policy: every 401 counts one failure against the client's `CF-Connecting-IP`. Past
//! `limit` failures within the binding's period (wrangler.toml: 20 per 60 s), the request is
//! answered 429 with `Retry-After`, and the isolate then answers 429 to that client wherever a
//! credential would be checked, until the period is over, without reading KV or D1. Successful
//! requests never count, so valid keys used from other IPs are not affected, and paths that
//! authenticate nothing (health, the OpenAPI document, forwarding without a key) stay open.

use crate::domain::time::Millis;
use crate::error::AppError;
use crate::service::BlockedClients;
use std::cell::RefCell;
use worker::RateLimiter;

/// The binding's period; Workers Rate Limiting accepts only 10 or 60 seconds.
const PERIOD_MS: Millis = 60_000;

thread_local! {
    static BLOCKED: RefCell<BlockedClients> = RefCell::new(BlockedClients::default());
}

/// 429 for a client this isolate already knows to be blocked.
pub fn check(client: Option<&str>, now: Millis) -> Result<(), AppError> {
    let Some(client) = client else { return Ok(()) };
    match BLOCKED.with(|b| b.borrow().retry_after(client, now)) {
        Some(retry_after_seconds) => Err(AppError::RateLimited {
            retry_after_seconds,
        }),
        None => Ok(()),
    }
}

/// Counts a failed authentication; turns it into 429 once the client is over the limit.
pub async fn count_failure(
    limiter: Option<RateLimiter>,
    client: Option<&str>,
    now: Millis,
    error: AppError,
) -> AppError {
    let (Some(client), Some(limiter)) = (client, limiter) else {
        return error;
    };
    match limiter.limit(format!("auth-failure:{client}")).await {
        Ok(outcome) if !outcome.success => {
            BLOCKED.with(|b| b.borrow_mut().block(client, now + PERIOD_MS, now));
            AppError::RateLimited {
                retry_after_seconds: (PERIOD_MS / 1000) as u32,
            }
        }
        _ => error,
    }
}
