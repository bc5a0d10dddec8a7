//! The isolate's configuration and bindings, read once, and the narrow per-request context that
//! handlers get: the tenant, the clock, the caller's address, the log, and typed access to the
//! bindings. No handler looks a binding or var up by name. It also counts the request's usage,
//! once its outcome is known.

use crate::cache::kv::{KvCache, KvNamespace};
use crate::config::{missing_binding, names, Config, Secret};
use crate::domain::identity::{self, Assertion, SigningKey};
use crate::domain::usage::{Flush, Outcome, Use};
use crate::domain::{cache_entry::Admitted, tenant::Tenant, time::Millis};
use crate::error::AppError;
use crate::log::RequestLog;
use crate::rate_limit;
use crate::service::{CacheOutcome, Cached, KeyCache, Keys, Validation};
use crate::signer;
use crate::store::d1::D1Store;
use crate::usage_queue;
use std::cell::{Cell, OnceCell};
use std::future::Future;
use std::rc::Rc;
use uuid::Uuid;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{js_sys, web_sys, Context, D1Database, Env, Fetcher, Queue};

thread_local! {
    /// The runtime's `env` lives as long as the isolate, so what is read from it is too.
    static ISOLATE: OnceCell<Rc<Isolate>> = const { OnceCell::new() };
}

/// `request.cf.country`: the `cf` object is read only when asked for, since building it costs.
fn cf_country(request: &web_sys::Request) -> Option<String> {
    let cf = js_sys::Reflect::get(request, &JsValue::from_str("cf")).ok()?;
    if !cf.is_object() {
        return None;
    }
    js_sys::Reflect::get(&cf, &JsValue::from_str("country"))
        .ok()?
        .as_string()
}

/// What the isolate reads from `env` once: the parsed configuration and the bindings, each of
/// which may be missing (the service then degrades or answers 503, as the README says).
pub struct Isolate {
    pub config: Config,
    db: Option<JsValue>,
    cache: Option<KvNamespace>,
    limiter: Option<JsValue>,
    assets: Option<JsValue>,
    usage_queue: Option<JsValue>,
}

impl Isolate {
    pub fn get(env: &Env) -> Rc<Isolate> {
        ISOLATE.with(|cell| cell.get_or_init(|| Rc::new(Isolate::read(env))).clone())
    }

    fn read(env: &Env) -> Isolate {
        let binding = |name: &str| {
            js_sys::Reflect::get(env, &JsValue::from_str(name))
                .ok()
                .filter(JsValue::is_object)
        };
        let text = |name: &str| {
            js_sys::Reflect::get(env, &JsValue::from_str(name))
                .ok()
                .and_then(|v| v.as_string())
        };
        Isolate {
            config: Config::read(text),
            db: binding(names::DB),
            cache: binding(names::API_KEY_CACHE).map(JsCast::unchecked_into),
            limiter: binding(names::AUTH_FAILURE_LIMITER),
            assets: binding(names::ASSETS),
            usage_queue: binding(names::USAGE_QUEUE),
        }
    }

    pub fn store(&self) -> Option<D1Store> {
        let db: D1Database = self.db.clone()?.unchecked_into();
        Some(D1Store::new(db))
    }

    pub fn cache(&self) -> KvCache {
        KvCache::new(self.cache.clone())
    }

    pub fn limiter(&self) -> Option<rate_limit::Limiter> {
        self.limiter.clone().map(JsCast::unchecked_into)
    }

    /// None when the binding is missing: usage is then dropped, and the drop logged.
    pub fn usage_queue(&self) -> Option<Queue> {
        self.usage_queue.clone().map(JsCast::unchecked_into)
    }
}

pub struct App {
    isolate: Rc<Isolate>,
    ctx: Context,
    /// The id the response's `X-Request-Id` carries, and the assertion's `jti`.
    request_id: String,
    tenant: Tenant,
    now: Millis,
    /// The client's IP (`CF-Connecting-IP`).
    client: Option<String>,
    log: RequestLog,
    /// Made on first use: the gateway's cache hits never need D1.
    store: OnceCell<Option<D1Store>>,
    cache: KvCache,
    /// The runtime's request, for `cf.country`, read only if the request is counted as a use.
    request: web_sys::Request,
    /// The key of the Host's tenant that this request presented, and its outcome so far.
    counted: Cell<Option<(Uuid, Outcome)>>,
}

impl App {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        isolate: Rc<Isolate>,
        ctx: Context,
        request_id: String,
        tenant: Tenant,
        now: Millis,
        client: Option<String>,
        log: RequestLog,
        request: web_sys::Request,
    ) -> App {
        App {
            cache: isolate.cache(),
            isolate,
            ctx,
            request_id,
            tenant,
            now,
            client,
            log,
            store: OnceCell::new(),
            request,
            counted: Cell::new(None),
        }
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub fn now(&self) -> Millis {
        self.now
    }

    /// The client's address as `CF-Connecting-IP` gave it, if it did.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn config(&self) -> &Config {
        &self.isolate.config
    }

    /// The cache, whose reads this request's log counts.
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    pub fn keys(&self) -> Result<Keys<'_, D1Store, KvCache>, AppError> {
        // A missing KV binding is not fatal: the cache then fails every call and D1 answers.
        Ok(Keys {
            store: self.store()?,
            cache: &self.cache,
        })
    }

    pub fn store(&self) -> Result<&D1Store, AppError> {
        self.store
            .get_or_init(|| self.isolate.store())
            .as_ref()
            .ok_or_else(|| AppError::Unavailable(missing_binding(names::DB)))
    }

    pub fn jwt_secret(&self) -> Result<&Secret, AppError> {
        self.config()
            .jwt_secret()
            .ok_or_else(|| AppError::Unavailable(format!("{} is not set", names::JWT_SECRET)))
    }

    pub fn assets(&self) -> Result<Fetcher, AppError> {
        self.isolate
            .assets
            .clone()
            .map(JsCast::unchecked_into)
            .ok_or_else(|| AppError::Unavailable(missing_binding(names::ASSETS)))
    }

    /// The signed `X-Rally-Identity` for a request this key was admitted for.
    pub async fn identity_assertion(
        &self,
        admitted: &Admitted,
        method: &str,
        path: &str,
    ) -> Result<String, AppError> {
        let (key, input) = self.assertion_input(admitted, method, path)?;
        let signature = signer::sign(key, &input).await?;
        Ok(identity::token(&input, &signature))
    }

    /// The signing key and the signing input of the assertion for this request.
    pub fn assertion_input(
        &self,
        admitted: &Admitted,
        method: &str,
        path: &str,
    ) -> Result<(&SigningKey, String), AppError> {
        let config = self.config();
        let origin = config
            .origin
            .as_ref()
            .ok_or(AppError::OriginNotConfigured)?;
        let key = config
            .identity
            .as_ref()
            .ok_or(AppError::IdentityNotConfigured)?;
        let mut key_id = Uuid::encode_buffer();
        let input = Assertion {
            audience: origin.origin(),
            key_id: admitted.key_id.hyphenated().encode_lower(&mut key_id),
            tenant: self.tenant.as_str(),
            scopes: admitted.scopes.as_str(),
            request_id: &self.request_id,
            method,
            path,
            now: self.now,
        }
        .signing_input(&key.kid);
        Ok((key, input))
    }

    /// Runs `work` after the response, for as long as the runtime allows.
    fn after_response(&self, work: impl Future<Output = ()> + 'static) {
        self.ctx.wait_until(work);
    }

    /// Validates an `X-Api-Key` value. Schedules the cache fill off the response path, and
    /// notes the key of this tenant it names for the usage counts. Every refusal of the key is
    /// the same 401; a valid key used from outside its allow-list is 403 `ip_not_allowed`,
    /// before any scope is looked at, so that every use of a key (the gateway and the
    /// management API alike) passes this one check.
    pub async fn validate_key(&self, presented: &str) -> Result<Admitted, AppError> {
        let blocked = self.refuse_blocked_client().err();
        let validation = self
            .keys()?
            .validate(presented, &self.tenant, self.now, blocked.is_some())
            .await?;
        if validation.cache == CacheOutcome::Blocked {
            return Err(self.refuse_lookup(blocked.unwrap_or(AppError::Unauthorized)));
        }
        self.accept(validation)
    }

    /// The answer to a key that only D1 could decide, from a client this isolate knows to be
    /// over the failed-authentication limit: no lookup, `blocked` in the log, and the client's
    /// 429. The handler (`validate_key`) and the gate (a cache miss it would hand over) both
    /// answer so.
    pub fn refuse_lookup(&self, blocked: AppError) -> AppError {
        self.log.set_cache(CacheOutcome::Blocked.as_str());
        blocked
    }

    /// `validate_key` for a malformed key, which needs no read: refused before any lookup.
    pub fn refuse_malformed_key(&self) -> AppError {
        if let Err(unavailable) = self.keys() {
            return unavailable;
        }
        self.log.set_cache(CacheOutcome::Skipped.as_str());
        AppError::Unauthorized
    }

    /// `validate_key` for a key whose cache entries have been read, when they decide alone
    /// (`Cached::validation`); None when D1 must answer, which only `validate_key` does.
    pub fn validate_cached(&self, cached: &Cached) -> Option<Result<Admitted, AppError>> {
        if let Err(unavailable) = self.keys() {
            return Some(Err(unavailable));
        }
        let validation = cached.validation(&self.tenant, self.now)?;
        Some(self.accept(validation))
    }

    /// What a validation means for this request: its log, its cache fill, its usage count and
    /// its answer.
    fn accept(&self, validation: Validation) -> Result<Admitted, AppError> {
        self.log.set_cache(validation.cache.as_str());
        if let Some(fill) = validation.fill {
            let isolate = self.isolate.clone();
            self.after_response(async move {
                if let Err(e) = isolate.cache().write(&fill).await {
                    worker::console_error!(
                        "{{\"event\":\"cache_fill_failed\",\"detail\":{:?}}}",
                        e.0
                    );
                }
            });
        }
        if let Some(refused) = validation.refused {
            self.counted
                .set(Some((refused.key_id, Outcome::from(refused.reason))));
        }
        let admitted = validation.admitted.ok_or(AppError::Unauthorized)?;
        self.log.set_key(admitted.key_id);
        self.counted.set(Some((admitted.key_id, Outcome::Allowed)));
        if !admitted.admits_client(self.client.as_deref()) {
            return Err(AppError::IpNotAllowed);
        }
        Ok(admitted)
    }

    /// Counts the request for the key of this tenant it presented, if any, with its outcome:
    /// a key that passed validation is `allowed` unless the request was then refused for its
    /// scope (or for the key's allow-list, `ipDenied`). The count joins the isolate's buffer;
    /// sending it is scheduled off the response path (`usage_queue`). Never fails the request.
    fn record_usage<T>(&self, result: &Result<T, AppError>) {
        let Some((key_id, outcome)) = self.counted.get() else {
            return;
        };
        let outcome = match (outcome, result) {
            (Outcome::Allowed, Err(AppError::Forbidden(_))) => Outcome::Forbidden,
            (Outcome::Allowed, Err(AppError::IpNotAllowed)) => Outcome::IpDenied,
            (outcome, _) => outcome,
        };
        let country = || cf_country(&self.request);
        let usage = Use {
            key_id,
            tenant: self.tenant.as_str(),
            outcome,
            at: self.now,
            client: self.client.as_deref(),
            country: &country,
        };
        let flush = usage_queue::record(usage);
        let isolate = self.isolate.clone();
        let send = match flush {
            Flush::Pending => None,
            Flush::After(delay) => {
                self.after_response(usage_queue::send_after(isolate, delay));
                Some("scheduled")
            }
            Flush::Now => {
                self.after_response(usage_queue::send_now(isolate));
                Some("now")
            }
        };
        self.log.set_usage(outcome.as_str(), send);
    }

    /// 429 for a client that failed authentication on this tenant too often. Keys consult it
    /// only before a lookup that would reach D1; sessions before their signature is checked.
    pub fn refuse_blocked_client(&self) -> Result<(), AppError> {
        rate_limit::check(&self.tenant, self.client.as_deref(), self.now)
    }

    /// Counts a 401 against the client; it becomes 429 once the client is over the limit.
    pub async fn count_auth_failure(&self) -> AppError {
        rate_limit::count_failure(
            self.isolate.limiter(),
            &self.tenant,
            self.client.as_deref(),
            self.now,
            AppError::Unauthorized,
        )
        .await
    }

    /// `count_auth_failure` started without an await; None when there is nothing to count.
    pub fn start_counting_auth_failure(&self) -> Option<rate_limit::Counting> {
        rate_limit::start_count(self.isolate.limiter(), &self.tenant, self.client.as_deref())
    }

    /// What every request of a tenant does once its handler has answered: the storage counts
    /// into the log, and the request into the usage counts.
    pub fn settle<T>(&self, result: Result<T, AppError>) -> Result<T, AppError> {
        self.record_counters();
        self.record_usage(&result);
        result
    }

    /// Copies the D1 and KV operation counts into the request log.
    fn record_counters(&self) {
        let queries = self
            .store
            .get()
            .and_then(Option::as_ref)
            .map_or(0, |s| s.queries.get());
        let reads = self.cache.reads.get();
        self.log.set_counters(queries, reads);
    }
}
