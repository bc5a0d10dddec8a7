//! Dispatch: the route table (`crate::route`) decides; this module calls the handler it names.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod gateway;
pub mod secret_scanning;
pub mod settings;

use crate::app::{App, Isolate};
use crate::config::{missing_binding, names};
use crate::domain::time::Millis;
use crate::domain::{cursor::List, identity};
use crate::error::AppError;
use crate::http;
use crate::log::RequestLog;
use crate::paging::Pager;
use crate::query::UrlParts;
use crate::route::{route, segments, Route};
use uuid::Uuid;
use worker::{web_sys, Request, Response};

/// The gateway gets the runtime's request as it is; this service's own paths get `worker`'s
/// wrapper, whose conversion costs more but buys its conveniences.
pub async fn handle(
    req: web_sys::Request,
    url: &UrlParts<'_>,
    app: &App,
) -> Result<web_sys::Response, AppError> {
    let method = req.method();
    let segments = segments(url.path);
    match route(&method, &segments) {
        Route::Gateway => gateway::forward(req, url, app).await,
        own_route => own(own_route, Request::from(req), app)
            .await
            .map(Into::into),
    }
}

/// The paths that serve every tenant at once (`route::is_tenantless`): no tenant, no session.
pub async fn tenantless(
    req: web_sys::Request,
    url: &UrlParts<'_>,
    isolate: &Isolate,
    now: Millis,
    log: &RequestLog,
) -> Result<web_sys::Response, AppError> {
    let (store, cache) = (isolate.store(), isolate.cache());
    let result = match route(&req.method(), &segments(url.path)) {
        Route::SecretScanningGithub => {
            let store = store
                .as_ref()
                .ok_or_else(|| AppError::Unavailable(missing_binding(names::DB)))?;
            secret_scanning::github(req, isolate, store, &cache, now, log).await
        }
        Route::NotAllowed { allow } => Err(AppError::MethodNotAllowed { allow }),
        _ => Err(AppError::NotFound),
    };
    // What the request cost in storage, for the log (and the test that unsigned alerts cost none).
    log.set_counters(store.map_or(0, |s| s.queries.get()), cache.reads.get());
    result
}

async fn own(route: Route<'_>, req: Request, app: &App) -> Result<Response, AppError> {
    match route {
        Route::Health => static_json(r#"{"status":"ok"}"#),
        Route::OpenApi => settings::openapi(req, app).await,
        Route::Jwks => jwks(app),
        Route::ListKeys => api_keys::list(req, app).await,
        Route::CreateKey => api_keys::create(req, app).await,
        Route::CurrentKey => api_keys::current(req, app).await,
        Route::GetKey(id) => api_keys::get(req, app, key_id(id)).await,
        Route::UpdateKey(id) => api_keys::update(req, app, key_id(id)).await,
        Route::RevokeKey(id) => api_keys::revoke(req, app, key_id(id)).await,
        Route::RotateKey(id) => api_keys::rotate(req, app, key_id(id)).await,
        Route::AuditEvents => audit::list(req, app).await,
        Route::KeyUsage(id) => api_keys::usage(req, app, key_id(id)).await,
        Route::SettingsAsset => settings::asset(req, app).await,
        Route::DevLogin => settings::dev_login(&req, app),
        // Dispatched before any tenant is read, in `tenantless`.
        Route::SecretScanningGithub => Err(AppError::NotFound),
        Route::NotAllowed { allow } => Err(AppError::MethodNotAllowed { allow }),
        Route::OwnNotFound => Err(AppError::NotFound),
        // Dispatched before any conversion, in `handle`.
        Route::Gateway => Err(AppError::Internal("gateway route in own dispatch".into())),
    }
}

/// A malformed id is simply not found: it can name no key, of this tenant or another. It is
/// parsed only after authentication, so that a caller without rights learns nothing from it.
/// Only the hyphenated form the API hands out is an id (not the braced, URN or bare forms the
/// uuid crate also reads), as the OpenAPI document says.
fn key_id(segment: &str) -> Option<Uuid> {
    (segment.len() == 36).then(|| Uuid::try_parse(segment).ok())?
}

/// A list's cursors, signed with the session secret, which every deployment has.
fn pager<'a>(app: &'a App, list: List) -> Pager<'a> {
    Pager {
        list,
        tenant: app.tenant(),
        key: app.config().jwt_secret().map(|s| s.expose().as_bytes()),
    }
}

/// The JWK Set origins verify `X-Rally-Identity` with: public halves only, cacheable for five
/// minutes (origins refetch it when they meet an unknown `kid`).
fn jwks(app: &App) -> Result<Response, AppError> {
    let body = identity::jwk_set(&app.config().published_keys());
    let mut response = Response::ok(body).map_err(http::internal("response"))?;
    let headers = response.headers_mut();
    for (name, value) in [
        ("Content-Type", "application/json"),
        ("Cache-Control", "public, max-age=300"),
    ] {
        headers.set(name, value).map_err(http::internal("header"))?;
    }
    Ok(response)
}

fn static_json(body: &'static str) -> Result<Response, AppError> {
    let mut response = Response::ok(body).map_err(http::internal("response"))?;
    response
        .headers_mut()
        .set("Content-Type", "application/json")
        .map_err(http::internal("header"))?;
    Ok(response)
}
