//! Every path that is not this service's own goes to the CRM origin. With `X-Api-Key`, only a
//! valid key with the right scope gets through, and the origin learns who it is from headers
//! that only the edge can set.

use super::auth::Caller;
use crate::app::App;
use crate::domain::scopes::Scopes;
use crate::error::AppError;
use crate::http::{self, header};
use worker::{Fetch, Headers, Request, RequestInit, RequestRedirect, Response};

const IDENTITY_PREFIX: &str = "x-rally-";

pub async fn forward(req: Request, app: &App<'_>) -> Result<Response, AppError> {
    let caller = match header(&req, "X-Api-Key") {
        Some(presented) => {
            let admitted = app.validate_key(&presented).await?;
            let method = req.method().to_string();
            if !admitted.scopes.allows_method(&method) {
                return Err(AppError::Forbidden(format!(
                    "This key needs the {} scope for {method}.",
                    Scopes::needed_for_method(&method)
                )));
            }
            Some(Caller::Key(admitted))
        }
        None => None,
    };
    let target = origin_target(app.var("ORIGIN_URL"), &req)?;
    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        // Client-sent identity headers are dropped whatever the credential: only the edge sets them.
        if name == "x-api-key" || name == "host" || name.starts_with(IDENTITY_PREFIX) {
            continue;
        }
        headers
            .append(&name, &value)
            .map_err(http::internal("header"))?;
    }
    if let Some(Caller::Key(admitted)) = &caller {
        let identity = [
            ("X-Rally-Tenant", app.tenant.to_string()),
            ("X-Rally-Api-Key-Id", admitted.key_id.to_string()),
            ("X-Rally-Scopes", admitted.scopes.to_string()),
        ];
        for (name, value) in identity {
            headers
                .set(name, &value)
                .map_err(http::internal("header"))?;
        }
    }
    let mut init = RequestInit::new();
    init.with_method(req.method())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    // The body is streamed through, never buffered.
    init.with_body(req.inner().body().map(Into::into));
    let outbound =
        Request::new_with_init(&target, &init).map_err(http::internal("outbound request"))?;
    let response = Fetch::Request(outbound)
        .send()
        .await
        .map_err(|_| AppError::OriginUnreachable)?;

    http::with_mutable_headers(response)
}

/// ORIGIN_URL (an http(s) URL, possibly with a path prefix) joined with the request's path and
/// query, which are kept exactly as the client sent them.
fn origin_target(origin: Option<String>, req: &Request) -> Result<String, AppError> {
    let origin = origin.ok_or(AppError::OriginNotConfigured)?;
    let base = origin.trim_end_matches('/');
    let host = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"));
    if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
        return Err(AppError::OriginNotConfigured);
    }
    let (_, query) = http::origin_and_query(req);
    Ok(match query {
        Some(query) => format!("{base}{}?{query}", req.path()),
        None => format!("{base}{}", req.path()),
    })
}
