//! The gateway's fast path: a request with a well-formed `X-Api-Key` whose cache entries decide
//! it (a hit or a negative entry) and whose signing key this isolate has already imported,
//! which is nearly every request at the edge.
//!
//! The JavaScript shell (`src/shell.mjs`) drives it: `gate_begin`, then `gate_next` with what
//! each promise gave, until it returns the response, then `gate_end`. Each step is synchronous Rust that makes
//! the decisions with the same functions as the Rust handler (`crate::routes::gateway`,
//! `App`), and starts the one runtime call the next step needs (the KV reads, the signature,
//! the rate limiter's count, the origin's fetch), whose promise the shell awaits. So the hot
//! path has no Rust future: no task, no executor wake-ups and no pair of closures per await,
//! which cost more here than the awaits themselves (BENCHMARKS.md).
//!
//! `gate_begin` returns 0, or `gate_next` undefined, when the request is not this path's: the shell then
//! hands the whole request to the Rust handler, which starts over (nothing the client sent has
//! been consumed, and nothing has been answered, counted or scheduled).

use crate::app::{App, Isolate};
use crate::cache::kv::KvCache;
use crate::domain::cache_entry::Admitted;
use crate::domain::{identity, key::PlainKey, tenant::Tenant};
use crate::entry::{clock, new_request_id, respond};
use crate::error::AppError;
use crate::log::RequestLog;
use crate::query::split_url;
use crate::rate_limit::Counting;
use crate::route::{self, Route};
use crate::routes::gateway::{self, Incoming};
use crate::signer;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use worker::{js_sys, web_sys, Context, Env};

/// A request on the fast path, between two of its steps.
pub struct Gate {
    app: App,
    incoming: Incoming,
    url: String,
    started: u64,
    stage: Stage,
}

/// What the promise that the shell awaits now is for.
enum Stage {
    /// `begin` has started the cache reads; the shell has not awaited anything yet.
    Begun(js_sys::Promise),
    ReadingCache,
    Signing {
        admitted: Admitted,
        input: String,
    },
    CountingFailure(Counting),
    Forwarding,
    Done,
}

thread_local! {
    /// The requests on the fast path in this isolate, by the number the shell holds. A number,
    /// not an object: an exported Rust object is a JavaScript wrapper registered with a
    /// `FinalizationRegistry`, which a request would pay for twice (`make profile`: `__wrap`).
    static GATES: RefCell<Vec<Option<Gate>>> = const { RefCell::new(Vec::new()) };
}

/// Starts the fast path for a request: its number for `gate_next` and `gate_end`, or 0 when
/// the request is not for this path (not the gateway, no key or a malformed one, no tenant in
/// the Host), which then goes to the Rust handler.
#[wasm_bindgen]
pub fn gate_begin(request: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> u32 {
    let Some(gate) = Gate::begin(request, env, ctx) else {
        return 0;
    };
    GATES.with(|gates| {
        let mut gates = gates.borrow_mut();
        let free = gates.iter().position(Option::is_none);
        let index = free.unwrap_or_else(|| {
            gates.push(None);
            gates.len() - 1
        });
        gates[index] = Some(gate);
        index as u32 + 1
    })
}

/// The next step of request `id`, given what the last promise gave (`ok`) or why it failed:
/// a promise to await and give back, the response, or undefined for the Rust handler.
#[wasm_bindgen]
pub fn gate_next(id: u32, settled: JsValue, ok: bool) -> JsValue {
    // Out of the table while it runs, so that nothing it calls can find the table borrowed.
    let taken = GATES.with(|gates| {
        let mut gates = gates.borrow_mut();
        gates
            .get_mut((id as usize).wrapping_sub(1))
            .and_then(Option::take)
    });
    let Some(mut gate) = taken else {
        return JsValue::UNDEFINED;
    };
    let step = gate.next(if ok { Ok(settled) } else { Err(settled) });
    GATES.with(|gates| gates.borrow_mut()[id as usize - 1] = Some(gate));
    step
}

/// Forgets request `id`, whichever way it ended. Unknown numbers are ignored: after a panic
/// the module is a new instance with an empty table.
#[wasm_bindgen]
pub fn gate_end(id: u32) {
    GATES.with(|gates| {
        if let Some(gate) = gates.borrow_mut().get_mut((id as usize).wrapping_sub(1)) {
            *gate = None;
        }
    });
}

impl Gate {
    fn begin(
        request: web_sys::Request,
        env: Env,
        ctx: worker::worker_sys::Context,
    ) -> Option<Gate> {
        let started = clock();
        let incoming = Incoming::new(request);
        let presented = incoming.header("x-api-key")?;
        #[cfg(feature = "panic-on-demand")]
        if incoming.header("x-test-panic").is_some() {
            return None;
        }
        #[cfg(feature = "handler-on-demand")]
        if incoming.header("x-test-handler").is_some() {
            return None;
        }
        let url = incoming.request.url();
        let parts = split_url(&url);
        let segments = route::segments(parts.path);
        let method = incoming.method.as_str();
        if route::is_tenantless(&segments) || route::route(method, &segments) != Route::Gateway {
            return None;
        }
        let isolate = Isolate::get(&env);
        let tenant = Tenant::from_host(incoming.header("host")?, &isolate.config.root_domain)?;
        let hash = PlainKey::parse(presented)?.hash();
        let request_id = incoming
            .header("cf-ray")
            .map_or_else(new_request_id, String::from);
        let log = RequestLog::new(&request_id, method, parts.path);
        log.set_tenant(tenant.as_str());
        log.set_lane("gate");
        let client = incoming.header("cf-connecting-ip").map(String::from);
        let app = App::new(
            isolate,
            Context::new(ctx),
            request_id,
            tenant,
            started as i64,
            client,
            log,
            // The handle, not `Request.clone()` (which would tee the body).
            Clone::clone(&incoming.request),
        );
        let reads = app.cache().start_read(&hash).ok()?;
        Some(Gate {
            app,
            incoming,
            url,
            started,
            stage: Stage::Begun(reads),
        })
    }

    fn next(&mut self, settled: Result<JsValue, JsValue>) -> JsValue {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Begun(reads) => self.wait(Stage::ReadingCache, reads),
            Stage::ReadingCache => {
                // A KV failure is the handler's to answer: D1 then decides.
                let Ok(values) = settled else {
                    return JsValue::UNDEFINED;
                };
                match self.app.validate_cached(&KvCache::cached(values)) {
                    None => JsValue::UNDEFINED,
                    Some(Ok(admitted)) => self.sign(admitted),
                    Some(Err(AppError::Unauthorized)) => {
                        match self.app.start_counting_auth_failure() {
                            Some(counting) => {
                                let promise = counting.promise.clone();
                                self.wait(Stage::CountingFailure(counting), promise)
                            }
                            None => self.finish(Err(AppError::Unauthorized)),
                        }
                    }
                    Some(Err(refused)) => self.finish(Err(refused)),
                }
            }
            Stage::Signing { admitted, input } => {
                let Ok(signature) = settled else {
                    return self.finish(Err(AppError::IdentityNotConfigured));
                };
                let assertion = identity::token(&input, &signer::signature_bytes(&signature));
                let url = split_url(&self.url);
                let identity = Some((&admitted, assertion));
                match gateway::start_forward(&self.incoming, &url, &self.app, identity) {
                    Ok(fetch) => self.wait(Stage::Forwarding, fetch),
                    Err(error) => self.finish(Err(error)),
                }
            }
            Stage::CountingFailure(counting) => {
                let now = self.app.now();
                self.finish(Err(counting.outcome(settled, now, AppError::Unauthorized)))
            }
            Stage::Forwarding => self.finish(gateway::forwarded(settled)),
            Stage::Done => JsValue::UNDEFINED,
        }
    }

    fn wait(&mut self, stage: Stage, promise: js_sys::Promise) -> JsValue {
        self.stage = stage;
        promise.into()
    }

    /// The scope check, then the assertion's signature started. A first signature in this
    /// isolate imports the key, which is the handler's to await.
    fn sign(&mut self, admitted: Admitted) -> JsValue {
        let admitted = match gateway::authorize(&self.incoming, admitted) {
            Ok(admitted) => admitted,
            Err(refused) => return self.finish(Err(refused)),
        };
        let url = split_url(&self.url);
        let method = &self.incoming.method;
        let (key, input) = match self.app.assertion_input(&admitted, method, url.path) {
            Ok(assertion) => assertion,
            Err(error) => return self.finish(Err(error)),
        };
        match signer::start_if_imported(key, &input) {
            None => JsValue::UNDEFINED,
            Some(Err(error)) => self.finish(Err(error)),
            Some(Ok(signing)) => self.wait(Stage::Signing { admitted, input }, signing),
        }
    }

    /// What the handler's caller does with every answer: usage, log line, response.
    fn finish(&mut self, result: Result<web_sys::Response, AppError>) -> JsValue {
        self.stage = Stage::Done;
        let result = self.app.settle(result);
        respond(result, self.app.log(), self.app.request_id(), self.started).into()
    }
}
