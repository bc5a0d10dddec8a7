//! Routing: this service's own paths, and the gateway for every other path.

pub mod api_keys;
pub mod auth;
pub mod gateway;
pub mod settings;

use crate::app::App;
use crate::error::AppError;
use crate::http;
use crate::query::UrlParts;
use uuid::Uuid;
use worker::{web_sys, Method, Request, Response};

/// The gateway gets the runtime's request as it is; this service's own paths get `worker`'s
/// wrapper, whose conversion costs more but buys its conveniences.
pub async fn handle(
    req: web_sys::Request,
    url: &UrlParts<'_>,
    app: &App<'_>,
) -> Result<web_sys::Response, AppError> {
    let segments: Vec<&str> = url.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"]
        | ["settings", ..]
        | ["api", "v1", "openapi.json"]
        | ["api", "v1", "api-keys", ..] => own(Request::from(req), &segments, app)
            .await
            .map(Into::into),
        _ => gateway::forward(req, url, app).await,
    }
}

async fn own(req: Request, segments: &[&str], app: &App<'_>) -> Result<Response, AppError> {
    let method = req.method();
    match segments {
        ["healthz"] => match method {
            Method::Get | Method::Head => static_json(r#"{"status":"ok"}"#),
            _ => Err(AppError::MethodNotAllowed { allow: "GET, HEAD" }),
        },
        ["settings", rest @ ..] => settings::handle(req, app, rest).await,
        ["api", "v1", "openapi.json"] => match method {
            Method::Get | Method::Head => static_json(OPENAPI),
            _ => Err(AppError::MethodNotAllowed { allow: "GET, HEAD" }),
        },
        ["api", "v1", "api-keys"] => match method {
            Method::Get => api_keys::list(req, app).await,
            Method::Post => api_keys::create(req, app).await,
            _ => Err(AppError::MethodNotAllowed { allow: "GET, POST" }),
        },
        ["api", "v1", "api-keys", "current"] => match method {
            Method::Get => api_keys::current(req, app).await,
            _ => Err(AppError::MethodNotAllowed { allow: "GET" }),
        },
        ["api", "v1", "api-keys", id] => match method {
            Method::Get => api_keys::get(req, app, key_id(id)).await,
            Method::Patch => api_keys::update(req, app, key_id(id)).await,
            Method::Delete => api_keys::revoke(req, app, key_id(id)).await,
            _ => Err(AppError::MethodNotAllowed {
                allow: "GET, PATCH, DELETE",
            }),
        },
        ["api", "v1", "api-keys", id, "rotate"] => match method {
            Method::Post => api_keys::rotate(req, app, key_id(id)).await,
            _ => Err(AppError::MethodNotAllowed { allow: "POST" }),
        },
        _ => Err(AppError::NotFound),
    }
}

/// A malformed id is simply not found: it can name no key, of this tenant or another. It is
/// parsed only after authentication, so that a caller without rights learns nothing from it.
fn key_id(segment: &str) -> Option<Uuid> {
    Uuid::try_parse(segment).ok()
}

/// The API's OpenAPI 3.1 document: `openapi.json` at the repository root, embedded at build time,
/// so that what is served is exactly the file the contract tests read.
const OPENAPI: &str = include_str!("../../openapi.json");

fn static_json(body: &'static str) -> Result<Response, AppError> {
    let mut response = Response::ok(body).map_err(http::internal("response"))?;
    response
        .headers_mut()
        .set("Content-Type", "application/json")
        .map_err(http::internal("header"))?;
    Ok(response)
}
