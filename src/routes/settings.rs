//! What the Workers Static Assets binding serves from `public/`: the API keys settings page
//! (`public/settings/`) and the OpenAPI document; and the page's development-only sign-in that
//! sets a session cookie.

use crate::app::App;
use crate::domain::{jwt, session};
use crate::error::AppError;
use crate::http::{self, header};
use worker::{Request, Response};

pub async fn asset(req: Request, app: &App) -> Result<Response, AppError> {
    let mut response = from_assets(req, app).await?;
    // The page loads only its own files, and no other site may frame it.
    response
        .headers_mut()
        .set(
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        .map_err(http::internal("header"))?;
    Ok(response)
}

/// The API's OpenAPI 3.1 document, `public/api/v1/openapi.json`, the file the contract tests
/// read. It is a static asset rather than a string in the Worker: embedded, its 79 KB were
/// about 10 KB of the module's gzip size, paid at every cold start by requests that never ask
/// for it (BENCHMARKS.md, "Size").
pub async fn openapi(req: Request, app: &App) -> Result<Response, AppError> {
    let mut response = from_assets(req, app).await?;
    response
        .headers_mut()
        .set("Content-Type", "application/json")
        .map_err(http::internal("header"))?;
    Ok(response)
}

/// The file of `public/` at the request's path, with headers this Worker may change.
async fn from_assets(req: Request, app: &App) -> Result<Response, AppError> {
    let response = app
        .assets()?
        .fetch_request(req)
        .await
        .map_err(http::internal("assets"))?;
    Ok(Response::from(http::with_mutable_headers(response.into())?))
}

/// Signs in as this tenant's admin, for local development only: it exists only when the var
/// DEV_LOGIN is exactly "enabled" (.dev.vars.example sets it; wrangler.toml never does), and is
/// otherwise a plain 404.
pub fn dev_login(req: &Request, app: &App) -> Result<Response, AppError> {
    if !app.config().dev_login {
        return Err(AppError::NotFound);
    }
    let (request_origin, _) = http::origin_and_query(req);
    let (fetch_site, origin) = (header(req, "Sec-Fetch-Site"), header(req, "Origin"));
    if !session::same_origin_or_safe(
        "POST",
        fetch_site.as_deref(),
        origin.as_deref(),
        &request_origin,
    ) {
        return Err(AppError::Forbidden("Cross-site request refused.".into()));
    }
    let token = jwt::sign(
        &session::dev_admin_claims(app.tenant(), app.now()),
        app.jwt_secret()?.expose().as_bytes(),
    );
    let mut response = Response::empty()
        .map_err(http::internal("response"))?
        .with_status(303);
    let headers = response.headers_mut();
    headers
        .set(
            "Set-Cookie",
            &session::session_cookie(&token, session::DEV_SESSION_SECONDS),
        )
        .map_err(http::internal("header"))?;
    headers
        .set("Location", "/settings/api-keys")
        .map_err(http::internal("header"))?;
    headers
        .set("Cache-Control", "no-store")
        .map_err(http::internal("header"))?;
    Ok(response)
}
