//! The gateway's fast path: a request for a CRM route without an `X-Api-Key`, with a malformed
//! one, or with one whose cache entries decide it (a hit or a negative entry), which is nearly
//! every request at the edge.
//!
//! A JavaScript shell (`src/shell.mjs` or `src/front.mjs`, with the loop of `src/gate.mjs`)
//! drives it: `gate_begin`, then `gate_next` with what each promise gave, until it returns the
//! response, then `gate_end`. Each step is synchronous Rust that makes the decisions with the
//! same functions as the Rust handler (`crate::routes::gateway`, `App`), and starts the one
//! runtime call the next step needs (the KV reads, the signing key's import once per isolate,
//! the signature, the rate limiter's count, the origin's fetch), whose promise the shell awaits.
//! So the hot path has no Rust future: no task, no executor wake-ups and no pair of closures per
//! await, which cost more here than the awaits themselves (BENCHMARKS.md).
//!
//! `gate_begin` returns 0, or `gate_next` undefined, when the request is not this path's: the
//! shell then hands the whole request to the Rust handler, which starts over (nothing the client
//! sent has been consumed, and nothing has been answered, counted or scheduled).
//!
//! This module and what it calls are all that the front Worker's build (cargo feature
//! `gate-only`) has: there, what the gate does not finish goes to the whole Worker.

use crate::app::{App, Isolate};
use crate::cache::kv::KvCache;
use crate::domain::cache_entry::Admitted;
use crate::domain::{identity, key::PlainKey, tenant::Tenant};
use crate::entry::{clock, new_request_id, respond};
use crate::error::AppError;
use crate::log::RequestLog;
use crate::query::split_url;
use crate::rate_limit::{self, Counting};
use crate::route::{self, Route};
use crate::routes::gateway::{self, Incoming};
use crate::signer;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use worker::{js_sys, web_sys, Context, Env};

/// The header the front Worker adds to what it hands to the whole Worker (`gate_hand_over`):
/// when its isolate's block of the client ends, or 0. Edge-owned (`x-rally-`), so never
/// forwarded to the origin, and a client's own value is replaced.
pub(crate) const HANDED_OVER: &str = "x-rally-handed-over";

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
    /// No key: forwarded as it is (without the edge's identity headers), as by the handler.
    Unkeyed,
    /// The key is malformed: refused before any read, as the handler refuses it.
    Malformed,
    ReadingCache,
    /// This isolate's first signature: the signing key is being imported.
    ImportingKey {
        admitted: Admitted,
        input: String,
    },
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
    /// Boxed, so that taking a request out of the table and putting it back (`gate_next`) moves
    /// a pointer, not the whole request.
    static GATES: RefCell<Vec<Option<Box<Gate>>>> = const { RefCell::new(Vec::new()) };
}

/// Starts the fast path for a request: its number for `gate_next` and `gate_end`, or 0 when
/// the request is not for this path (not the gateway, no tenant in the Host), which then goes to
/// the Rust handler.
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
        gates[index] = Some(Box::new(gate));
        index as u32 + 1
    })
}

/// What the front Worker (src/front.mjs) hands to the whole Worker for a request that its gate
/// did not finish: the request as it is, body untouched, with `HANDED_OVER` set to when this
/// isolate's block of the client on its tenant ends (`rate_limit`), or 0, since the whole
/// Worker's isolate has not seen the failures that this one counted.
#[wasm_bindgen]
pub fn gate_hand_over(request: web_sys::Request, env: Env) -> Result<web_sys::Request, JsValue> {
    let headers = web_sys::Headers::new_with_headers(&request.headers())?;
    let header = |name: &str| headers.get(name).ok().flatten();
    let blocked_until = match (header("host"), header("cf-connecting-ip")) {
        (Some(host), Some(client)) => {
            let isolate = Isolate::get(&env);
            Tenant::from_host(&host, &isolate.config.root_domain)
                .and_then(|tenant| rate_limit::blocked_until(&tenant, &client, clock() as i64))
                .unwrap_or(0)
        }
        _ => 0,
    };
    headers.set(HANDED_OVER, &blocked_until.to_string())?;
    let init = web_sys::RequestInit::new();
    init.set_headers(&headers);
    web_sys::Request::new_with_request_and_init(&request, &init)
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
        #[cfg(feature = "panic-on-demand")]
        if incoming.header("x-test-panic").is_some() {
            return None;
        }
        #[cfg(feature = "handler-on-demand")]
        if incoming.header("x-test-handler").is_some() {
            return None;
        }
        // What the front Worker's gate handed over (src/front.mjs) has been through a gate
        // already: this one would only read the cache again. The front's own gate ignores the
        // header, which a client may send too (and so only chooses the slower path).
        #[cfg(not(feature = "gate-only"))]
        if incoming.header(HANDED_OVER).is_some() {
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
        let presented = incoming.header("x-api-key").map(PlainKey::parse);
        let request_id = incoming
            .header("cf-ray")
            .map_or_else(new_request_id, String::from);
        let log = RequestLog::new(&request_id, method, parts.path);
        log.set_tenant(tenant.as_str());
        log.set_lane(if cfg!(feature = "gate-only") {
            "front"
        } else {
            "gate"
        });
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
        let stage = match presented {
            None => Stage::Unkeyed,
            Some(None) => Stage::Malformed,
            Some(Some(key)) => Stage::Begun(app.cache().start_read(&key.hash()).ok()?),
        };
        Some(Gate {
            app,
            incoming,
            url,
            started,
            stage,
        })
    }

    fn next(&mut self, settled: Result<JsValue, JsValue>) -> JsValue {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Begun(reads) => self.wait(Stage::ReadingCache, reads),
            Stage::ReadingCache => {
                // A KV failure is the handler's to answer, as a miss is: D1 then decides.
                let decided = settled
                    .ok()
                    .and_then(|values| self.app.validate_cached(&KvCache::cached(values)));
                match decided {
                    None => self.hand_over(),
                    Some(Ok(admitted)) => self.sign(admitted),
                    Some(Err(refused)) => self.refuse(refused),
                }
            }
            Stage::Unkeyed => {
                let url = split_url(&self.url);
                match gateway::start_forward(&self.incoming, &url, &self.app, None) {
                    Ok(fetch) => self.wait(Stage::Forwarding, fetch),
                    Err(error) => self.finish(Err(error)),
                }
            }
            Stage::Malformed => {
                let refused = self.app.refuse_malformed_key();
                self.refuse(refused)
            }
            Stage::ImportingKey { admitted, input } => {
                let (Ok(crypto_key), Some(key)) = (settled, self.app.config().identity.as_ref())
                else {
                    return self.finish(Err(AppError::IdentityNotConfigured));
                };
                signer::remember(key, &crypto_key);
                match signer::start_signing(&crypto_key, &input) {
                    Ok(signing) => self.wait(Stage::Signing { admitted, input }, signing),
                    Err(error) => self.finish(Err(error)),
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

    /// The answer to a key refused: a 401 is counted against the client first, and becomes 429
    /// once the client is over the limit.
    fn refuse(&mut self, refused: AppError) -> JsValue {
        if !matches!(refused, AppError::Unauthorized) {
            return self.finish(Err(refused));
        }
        match self.app.start_counting_auth_failure() {
            Some(counting) => {
                let promise = counting.promise.clone();
                self.wait(Stage::CountingFailure(counting), promise)
            }
            None => self.finish(Err(AppError::Unauthorized)),
        }
    }

    /// The request goes to the handler, since D1 must answer; unless this isolate knows the
    /// client to be over the failed-authentication limit, which is refused any lookup that would
    /// reach D1, here as in the handler (`Keys::validate`). Behind the front Worker, the
    /// handler is in another Worker that has not seen this isolate's blocks.
    fn hand_over(&mut self) -> JsValue {
        match self.app.refuse_blocked_client() {
            Ok(()) => JsValue::UNDEFINED,
            Err(blocked) => {
                let refused = self.app.refuse_lookup(blocked);
                self.finish(Err(refused))
            }
        }
    }

    fn wait(&mut self, stage: Stage, promise: js_sys::Promise) -> JsValue {
        self.stage = stage;
        promise.into()
    }

    /// The scope check, then the assertion's signature started, or, for this isolate's first
    /// signature, the signing key's import.
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
        let (stage, started) = match signer::start_if_imported(key, &input) {
            Some(signing) => (Stage::Signing { admitted, input }, signing),
            None => (
                Stage::ImportingKey { admitted, input },
                signer::start_import(key),
            ),
        };
        match started {
            Ok(promise) => self.wait(stage, promise),
            Err(error) => self.finish(Err(error)),
        }
    }

    /// What the handler's caller does with every answer: usage, log line, response.
    fn finish(&mut self, result: Result<web_sys::Response, AppError>) -> JsValue {
        self.stage = Stage::Done;
        let result = self.app.settle(result);
        respond(result, self.app.log(), self.app.request_id(), self.started).into()
    }
}
