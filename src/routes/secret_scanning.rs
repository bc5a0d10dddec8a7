//! `POST /api/v1/secret-scanning/github`: GitHub's secret-scanning partner alerts. A key pushed
//! to a public repository is reported here within seconds, and revoked at once.
//!
//! The order protects storage: no credential, so the signature is checked first (headers, then
//! the key list, then Web Crypto), and only a signed alert reads D1. A flood of unsigned posts
//! costs no D1 read and at most one fetch of the key list a minute.

use crate::app::Isolate;
use crate::cache::kv::KvCache;
use crate::domain::audit::{self, Actor, AuditAction};
use crate::domain::key::{KeyHash, PlainKey};
use crate::domain::secret_scanning::{
    self, der_signature_to_raw, pem_to_der, standard_base64, AlertError, KeyList, Label,
    ReportedToken,
};
use crate::domain::{tenant::Tenant, time::Millis};
use crate::error::AppError;
use crate::http;
use crate::log::RequestLog;
use crate::service::{KeyStore, Keys};
use crate::signer;
use crate::store::d1::D1Store;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};

/// GitHub's key list changes rarely: kept an hour, and fetched again at most once a minute when
/// an alert names a key identifier the list does not have.
const KEYS_FRESH_MS: Millis = 3_600_000;
const KEYS_REFETCH_MS: Millis = 60_000;

/// The audit log's actor for a revocation made on a leak report.
const LEAK_ACTOR: &str = "secret-scanning:github";

thread_local! {
    /// (fetched at, the list) of this isolate.
    static KEY_LIST: RefCell<Option<(Millis, std::rc::Rc<KeyList>)>> = const { RefCell::new(None) };
}

pub async fn github(
    req: web_sys::Request,
    isolate: &Isolate,
    store: &D1Store,
    cache: &KvCache,
    now: Millis,
    log: &RequestLog,
) -> Result<web_sys::Response, AppError> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let signature = header("Github-Public-Key-Signature")
        .and_then(|s| standard_base64(&s))
        .and_then(|der| der_signature_to_raw(&der))
        .ok_or(AppError::Unauthorized)?;
    let key_identifier = header("Github-Public-Key-Identifier").ok_or(AppError::Unauthorized)?;
    if let Some(length) = header("Content-Length").and_then(|l| l.trim().parse::<u64>().ok()) {
        if length > secret_scanning::MAX_BODY_BYTES as u64 {
            return Err(AppError::PayloadTooLarge);
        }
    }
    let body = http::read_bounded(req.body(), secret_scanning::MAX_BODY_BYTES).await?;

    let url = isolate
        .config
        .secret_scanning_keys_url
        .as_deref()
        .ok_or_else(|| AppError::Unavailable("SECRET_SCANNING_KEYS_URL is not set".into()))?;
    let list = key_list(url, &key_identifier, now).await?;
    let public_key = list.find(&key_identifier).ok_or(AppError::Unauthorized)?;
    let spki = pem_to_der(&public_key.key).ok_or(AppError::Unauthorized)?;
    if !signer::verify_p256(&key_identifier, &spki, &signature, &body).await? {
        return Err(AppError::Unauthorized);
    }

    let tokens = secret_scanning::parse_alert(&body).map_err(|error| match error {
        AlertError::Malformed => AppError::InvalidJson(
            "The alert must be a JSON array of {token, type, url, source} objects.",
        ),
        AlertError::TooMany => AppError::PayloadTooLarge,
    })?;

    // Only tokens in our exact format can be ours; the rest are labelled without a lookup.
    // Each hash with the first report of its token, which says where it was found.
    let mut reports: HashMap<KeyHash, &ReportedToken> = HashMap::new();
    for token in &tokens {
        if let Some(key) = PlainKey::parse(&token.token) {
            reports.entry(key.hash()).or_insert(token);
        }
    }
    let ours: Vec<KeyHash> = reports.keys().cloned().collect();
    let keys = Keys { store, cache };
    let found = store.find_secrets(&ours).await?;
    let actor = Actor::new(LEAK_ACTOR.into(), header("CF-Connecting-IP").as_deref());
    let mut revoked = HashSet::new();
    for (hash, secret) in &found {
        // A secret that has already ended (rotated out, its grace over, its row not yet
        // deleted) is no credential any more: revoking its key would stop the secret that
        // replaced it, which was not reported. It is still labelled ours.
        if secret.is_rotated_out(now)
            || secret.revoked_at.is_some()
            || !revoked.insert(secret.key_id)
        {
            continue;
        }
        let Some(tenant) = Tenant::parse(&secret.tenant) else {
            continue;
        };
        // The same fail-closed path as DELETE. A revocation whose cache write failed still
        // stands in D1 and ends everywhere within the stated bound; the alert is answered.
        let report = reports.get(hash);
        let details = audit::leaked(
            report.and_then(|t| t.url.as_deref()),
            report.and_then(|t| t.source.as_deref()),
        );
        let leaked = keys.revoke_recording(
            &tenant,
            secret.key_id,
            AuditAction::Leaked,
            details,
            &actor,
            now,
        );
        match leaked.await {
            Ok(()) => log_leak(log, &tenant, secret.key_id, "revoked"),
            Err(AppError::PropagationFailed) => {
                log_leak(log, &tenant, secret.key_id, "revoked_propagation_failed")
            }
            Err(error) => return Err(error),
        }
    }
    let known: HashSet<&str> = found.iter().map(|(hash, _)| hash.as_str()).collect();
    let labels: Vec<Label> = tokens
        .iter()
        .map(|t| {
            let hash = hex::encode(Sha256::digest(t.token.as_bytes()));
            let is_ours = known.contains(hash.as_str());
            Label::new(hash, &t.token_type, is_ours)
        })
        .collect();
    let response = http::json(200, &labels)?;
    Ok(response.into())
}

/// One line per leaked key, with its tenant and id: never the token.
fn log_leak(log: &RequestLog, tenant: &Tenant, key_id: uuid::Uuid, outcome: &str) {
    log.set_key(key_id);
    worker::console_log!(
        "{{\"event\":\"api_key_leaked\",\"tenant\":\"{tenant}\",\"keyId\":\"{key_id}\",\"outcome\":\"{outcome}\"}}"
    );
}

/// The key list, from this isolate's copy while it is fresh and knows `key_identifier`;
/// otherwise fetched again, at most once a minute.
async fn key_list(
    url: &str,
    key_identifier: &str,
    now: Millis,
) -> Result<std::rc::Rc<KeyList>, AppError> {
    let cached = KEY_LIST.with(|list| list.borrow().clone());
    if let Some((fetched_at, list)) = &cached {
        let fresh = now - fetched_at < KEYS_FRESH_MS;
        let may_refetch = now - fetched_at >= KEYS_REFETCH_MS;
        if (fresh && list.find(key_identifier).is_some()) || !may_refetch {
            return Ok(list.clone());
        }
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let fetched = JsFuture::from(global.fetch_with_str(url)).await;
    let text = match fetched {
        Ok(response) => {
            let response: web_sys::Response = response.unchecked_into();
            match response.text() {
                Ok(promise) if response.ok() => JsFuture::from(promise).await.ok(),
                _ => None,
            }
        }
        Err(_) => None,
    };
    let Some(list) = text
        .and_then(|t| t.as_string())
        .and_then(|t| KeyList::parse(&t))
    else {
        // The list is unreachable: keep what we had, and refuse what it cannot verify.
        return cached
            .map(|(_, list)| list)
            .ok_or_else(|| AppError::Unavailable("secret-scanning key list unreachable".into()));
    };
    let list = std::rc::Rc::new(list);
    KEY_LIST.with(|cell| *cell.borrow_mut() = Some((now, list.clone())));
    Ok(list)
}
