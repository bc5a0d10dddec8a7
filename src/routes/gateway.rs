//! Every path that is not this service's own goes to the CRM origin. With `X-Api-Key`, only a
//! valid key with the right scope gets through, and the origin learns who it is from headers
//! that only the edge can set.
//!
//! This is the hot path, so it works on the runtime's own request and response objects
//! (`web_sys`) rather than `worker`'s wrappers: converting the incoming request reads its `cf`
//! object, and copying headers one by one crosses between wasm and JavaScript twice per header.
//! Measured with `make profile`: see BENCHMARKS.md.

use crate::app::App;
use crate::domain::scopes::Scopes;
use crate::error::AppError;
use crate::http::{self, js_internal};
use crate::query::UrlParts;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};

const IDENTITY_PREFIX: &str = "x-rally-";

pub async fn forward(
    req: web_sys::Request,
    url: &UrlParts<'_>,
    app: &App<'_>,
) -> Result<web_sys::Response, AppError> {
    let incoming = req.headers();
    let method = req.method();
    let admitted = match incoming.get("x-api-key").ok().flatten() {
        Some(presented) => {
            let admitted = app.validate_key(&presented).await?;
            if !admitted.scopes.allows_method(&method) {
                return Err(AppError::Forbidden(format!(
                    "This key needs the {} scope for {method}.",
                    Scopes::needed_for_method(&method)
                )));
            }
            Some(admitted)
        }
        None => None,
    };
    let target = app
        .config()
        .origin
        .as_ref()
        .ok_or(AppError::OriginNotConfigured)?
        .join(url.path, url.query);

    // `new Headers(incoming)` copies them all inside the runtime; then the edge removes what
    // only it may set. Client-sent identity headers go whatever the credential.
    let headers = web_sys::Headers::new_with_headers(&incoming).map_err(js_internal("headers"))?;
    for name in header_names(&headers)? {
        if name == "x-api-key" || name == "host" || name.starts_with(IDENTITY_PREFIX) {
            headers.delete(&name).map_err(js_internal("headers"))?;
        }
    }
    if let Some(admitted) = &admitted {
        let identity = [
            ("X-Rally-Tenant", app.tenant().to_string()),
            ("X-Rally-Api-Key-Id", admitted.key_id.to_string()),
            ("X-Rally-Scopes", admitted.scopes.to_string()),
        ];
        for (name, value) in identity {
            headers.set(name, &value).map_err(js_internal("headers"))?;
        }
    }

    let init = web_sys::RequestInit::new();
    init.set_method(&method);
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    // The body is streamed through, never buffered.
    if let Some(body) = req.body() {
        init.set_body(&body);
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let fetched = JsFuture::from(global.fetch_with_str_and_init(&target, &init))
        .await
        .map_err(|_| AppError::OriginUnreachable)?;
    http::with_mutable_headers(fetched.unchecked_into())
}

/// The names of a header list, lower-case as the runtime keeps them.
fn header_names(headers: &web_sys::Headers) -> Result<Vec<String>, AppError> {
    let mut names = Vec::new();
    let keys = headers.keys();
    loop {
        let next = keys.next().map_err(js_internal("headers"))?;
        if next.done() {
            return Ok(names);
        }
        names.extend(next.value().as_string());
    }
}
