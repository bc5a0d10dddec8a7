//! Per-request state of the Worker: the tenant, the clock, the bindings and the request log.

use crate::cache::kv::{KvCache, KvNamespace};
use crate::domain::{cache_entry::Admitted, tenant::Tenant, time::Millis};
use crate::error::AppError;
use crate::log::RequestLog;
use crate::rate_limit;
use crate::service::{KeyCache, KeyStore, Keys, LastUsedThrottle};
use crate::store::d1::D1Store;
use std::cell::{OnceCell, RefCell};
use worker::{Context, Env};

pub const DB_BINDING: &str = "DB";
pub const CACHE_BINDING: &str = "API_KEY_CACHE";

thread_local! {
    /// Lives as long as the isolate: the lastUsedAt writes this isolate made recently.
    static LAST_USED: RefCell<LastUsedThrottle> = RefCell::new(LastUsedThrottle::default());
}

pub struct App<'a> {
    pub env: &'a Env,
    pub ctx: &'a Context,
    pub tenant: Tenant,
    pub now: Millis,
    /// The client's IP (`CF-Connecting-IP`), for the failed-authentication rate limit.
    pub client: Option<String>,
    pub log: &'a RequestLog,
    /// Looked up on first use: the gateway's cache hits never need D1.
    store: OnceCell<Option<D1Store>>,
    cache: KvCache,
}

impl<'a> App<'a> {
    pub fn new(
        env: &'a Env,
        ctx: &'a Context,
        tenant: Tenant,
        now: Millis,
        client: Option<String>,
        log: &'a RequestLog,
    ) -> App<'a> {
        App {
            client,
            store: OnceCell::new(),
            cache: KvCache::new(KvNamespace::from_env(env, CACHE_BINDING)),
            env,
            ctx,
            tenant,
            now,
            log,
        }
    }

    pub fn keys(&self) -> Result<Keys<'_, D1Store, KvCache>, AppError> {
        // A missing KV binding is not fatal: the cache then fails every call and D1 answers.
        let store = self
            .store
            .get_or_init(|| self.env.d1(DB_BINDING).ok().map(D1Store::new))
            .as_ref()
            .ok_or_else(|| AppError::Unavailable(format!("binding {DB_BINDING} is missing")))?;
        Ok(Keys {
            store,
            cache: &self.cache,
        })
    }

    pub fn var(&self, name: &str) -> Option<String> {
        self.env
            .var(name)
            .ok()
            .map(|v| v.to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn jwt_secret(&self) -> Result<String, AppError> {
        self.env
            .secret("JWT_SECRET")
            .ok()
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AppError::Unavailable("JWT_SECRET is not set".into()))
    }

    /// Validates an `X-Api-Key` value. Schedules the cache fill and the lastUsedAt write off
    /// the response path. Every refusal is the same 401.
    pub async fn validate_key(&self, presented: &str) -> Result<Admitted, AppError> {
        self.refuse_blocked_client()?;
        let validation = self
            .keys()?
            .validate(presented, &self.tenant, self.now)
            .await?;
        self.log.set_cache(validation.cache.as_str());
        if let Some((hash, entry)) = validation.fill {
            let env = self.env.clone();
            self.ctx.wait_until(async move {
                let cache = KvCache::new(KvNamespace::from_env(&env, CACHE_BINDING));
                if let Err(e) = cache.fill(&hash, &entry).await {
                    worker::console_error!(
                        "{{\"event\":\"cache_fill_failed\",\"detail\":{:?}}}",
                        e.0
                    );
                }
            });
        }
        let admitted = validation.admitted.ok_or(AppError::Unauthorized)?;
        self.log.set_key(admitted.key_id);
        if LAST_USED.with(|t| t.borrow_mut().due(admitted.key_id, self.now)) {
            self.log.set_last_used_write();
            let (env, tenant, now) = (self.env.clone(), self.tenant.clone(), self.now);
            self.ctx.wait_until(async move {
                if let Ok(db) = env.d1(DB_BINDING) {
                    if let Err(e) = D1Store::new(db)
                        .touch_last_used(&tenant, admitted.key_id, now)
                        .await
                    {
                        worker::console_error!(
                            "{{\"event\":\"last_used_failed\",\"detail\":{:?}}}",
                            e.0
                        );
                    }
                }
            });
        }
        Ok(admitted)
    }

    /// 429 for a client that failed authentication too often, before any credential is looked at
    /// (and so before any KV or D1 read).
    pub fn refuse_blocked_client(&self) -> Result<(), AppError> {
        rate_limit::check(self.client.as_deref(), self.now)
    }

    /// Counts a 401 against the client; it becomes 429 once the client is over the limit.
    pub async fn count_auth_failure(&self) -> AppError {
        rate_limit::count_failure(
            self.env,
            self.client.as_deref(),
            self.now,
            AppError::Unauthorized,
        )
        .await
    }

    /// Copies the D1 and KV operation counts into the request log.
    pub fn record_counters(&self) {
        let queries = self
            .store
            .get()
            .and_then(Option::as_ref)
            .map_or(0, |s| s.queries.get());
        let reads = self.cache.reads.get();
        self.log.set_counters(queries, reads);
    }
}
