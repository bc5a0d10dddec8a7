//! Rally CRM API keys at the edge. `domain`, `error` and `service` are pure Rust and tested
//! natively; the Worker glue (routes, D1, KV, HTTP) exists only on wasm32.
//!
//! Built with the feature `gate-only`, the crate exports the gateway's fast path (`gate`) and
//! nothing else, for the front Worker: what only the handlers reach is left out of its wasm.
// What only the handlers use is dead code in the front Worker's build, and alive in the whole one.
#![cfg_attr(feature = "gate-only", allow(dead_code, unused_imports))]

pub mod config;
pub mod domain;
pub mod error;
pub mod header_lines;
pub mod json_object;
pub mod paging;
pub mod query;
pub mod route;
pub mod service;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod boundary;
#[cfg(target_arch = "wasm32")]
mod cache;
#[cfg(target_arch = "wasm32")]
mod gate;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod log;
#[cfg(target_arch = "wasm32")]
mod microtasks;
#[cfg(target_arch = "wasm32")]
mod rate_limit;
#[cfg(target_arch = "wasm32")]
mod routes;
#[cfg(target_arch = "wasm32")]
mod signer;
#[cfg(target_arch = "wasm32")]
mod store;
#[cfg(target_arch = "wasm32")]
mod usage_queue;

#[cfg(target_arch = "wasm32")]
mod entry {
    use crate::app::{App, Isolate};
    use crate::{boundary, gate, query::split_url, rate_limit, route, routes, usage_queue};
    use crate::{domain::tenant::Tenant, error::AppError, http, log::RequestLog};
    use worker::wasm_bindgen::JsValue;
    use worker::{event, js_sys, web_sys, Context, Env, Result};
    use worker::{MessageBatch, ScheduleContext, ScheduledEvent};

    /// Host → tenant → route, then the one place that turns errors into responses and logs.
    /// It takes the runtime's request as it is: the gateway, the hot path, needs nothing more.
    /// The JavaScript shell (`src/shell.mjs`) sends here every request that its fast path
    /// (`crate::gate`) does not finish.
    #[cfg(not(feature = "gate-only"))]
    #[event(fetch)]
    async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
        let started = clock();
        let headers = req.headers();
        let header = |name: &str| headers.get(name).ok().flatten();
        let request_id = header("cf-ray").unwrap_or_else(new_request_id);
        let url = req.url();
        let url = split_url(&url);
        let log = RequestLog::new(&request_id, &req.method(), url.path);
        log.set_lane("handler");

        #[cfg(feature = "panic-on-demand")]
        if header("x-test-panic").is_some() {
            panic!("a panic on demand (feature panic-on-demand)");
        }

        let isolate = Isolate::get(&env);
        let host = header("Host").unwrap_or_default();
        let root_domain = &isolate.config.root_domain;
        if route::is_tenantless(&route::segments(url.path)) {
            let result = if Tenant::is_service_host(&host, root_domain) {
                routes::tenantless(req, &url, &isolate, started as i64, &log).await
            } else {
                Err(AppError::InvalidHost)
            };
            return Ok(respond(result, &log, &request_id, started));
        }
        let Some(tenant) = Tenant::from_host(&host, root_domain) else {
            return Ok(respond(
                Err(AppError::InvalidHost),
                &log,
                &request_id,
                started,
            ));
        };
        log.set_tenant(tenant.as_str());
        // Behind the front Worker: a block that its isolate knows of holds here too.
        let client = header("CF-Connecting-IP");
        let handed_over = header(gate::HANDED_OVER).and_then(|until| until.parse::<i64>().ok());
        if let (Some(until), Some(client)) = (handed_over, &client) {
            rate_limit::note_block(&tenant, client, until, started as i64);
        }
        let app = App::new(
            isolate,
            ctx,
            request_id,
            tenant,
            started as i64,
            client,
            log,
            // The handle, not `Request.clone()` (which would tee the body).
            Clone::clone(&req),
        );
        let result = app.settle(routes::handle(req, &url, &app).await);
        let result = match result {
            Err(AppError::Unauthorized) => Err(app.count_auth_failure().await),
            other => other,
        };
        Ok(respond(result, app.log(), app.request_id(), started))
    }

    /// The response to a request and its log line: the one place that turns errors into
    /// responses, and that every response leaves through.
    pub(crate) fn respond(
        result: std::result::Result<web_sys::Response, AppError>,
        log: &RequestLog,
        request_id: &str,
        started: u64,
    ) -> web_sys::Response {
        let response = match result {
            Ok(response) => {
                log.set_outcome(response.status(), "ok", None);
                response
            }
            Err(error) => {
                log.set_outcome(error.status(), error.code(), error.log_detail());
                http::error_response(&error)
            }
        };
        let headers = response.headers();
        // A response's headers are mutable here: every response this Worker makes is its own
        // (the origin's is re-wrapped first).
        let _ = boundary::set(&headers, |n| &n.x_request_id, request_id);
        let _ = boundary::set_constant(&headers, |n| &n.x_content_type_options, |n| &n.nosniff);
        // The line as it is: `console_log!` would format it into a second string first.
        web_sys::console::log_1(&JsValue::from(log.to_json(clock().saturating_sub(started))));
        response
    }

    /// Once per isolate, when the module is instantiated (and again if it is re-instantiated).
    #[event(start)]
    fn start() {
        crate::microtasks::wake_with_promise_jobs();
    }

    /// The usage queue's consumer: this Worker consumes what its isolates send (`usage_queue`).
    #[cfg(not(feature = "gate-only"))]
    #[event(queue)]
    async fn queue(batch: MessageBatch<JsValue>, env: Env, _ctx: Context) -> Result<()> {
        // An error here would fail the whole batch without a word; the consumer logs its own
        // failures and hands the batch back to the queue itself.
        usage_queue::consume(&Isolate::get(&env), batch, clock() as i64).await;
        Ok(())
    }

    /// The daily Cron Trigger (wrangler.toml `[triggers]`): removes usage past its retention,
    /// as of the trigger's scheduled time.
    #[cfg(not(feature = "gate-only"))]
    #[event(scheduled)]
    async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
        usage_queue::prune(&Isolate::get(&env), event.schedule() as i64).await;
    }

    /// The one place that reads the clock (clippy.toml bans it elsewhere): everything below
    /// takes the request's time as an argument, so that it is tested with any time it likes.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn clock() -> u64 {
        // The static `Date.now()`: `worker::Date::now` builds a `Date` object to read it.
        js_sys::Date::now() as u64
    }

    pub(crate) fn new_request_id() -> String {
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        hex::encode(bytes)
    }
}
