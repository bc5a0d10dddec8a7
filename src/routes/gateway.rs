//! Every path that is not this service's own goes to the CRM origin. With `X-Api-Key`, only a
//! valid key with the right scope gets through, and the origin learns who it is from headers
//! that only the edge can set.
//!
//! This is the hot path, so it works on the runtime's own request and response objects
//! (`web_sys`) rather than `worker`'s wrappers: converting the incoming request reads its `cf`
//! object, and copying headers one by one crosses between wasm and JavaScript twice per header.
//! Measured with `make profile`: see BENCHMARKS.md.

use crate::app::App;
use crate::boundary;
use crate::domain::cache_entry::Admitted;
use crate::domain::forwarding;
use crate::domain::scopes::{Needed, METHOD_OVERRIDE_HEADERS};
use crate::error::AppError;
use crate::header_lines::HeaderLines;
use crate::http::{self, js_internal};
use crate::query::UrlParts;
use uuid::Uuid;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};

/// The client's request, with what the gateway reads of it: each read of the runtime's
/// request crosses from wasm to JavaScript, so the method and the headers are read once.
pub struct Incoming {
    pub request: web_sys::Request,
    pub headers: web_sys::Headers,
    pub method: String,
    lines: HeaderLines,
}

impl Incoming {
    pub fn new(request: web_sys::Request) -> Incoming {
        let headers = request.headers();
        Incoming {
            lines: HeaderLines::new(boundary::header_lines(&headers)),
            headers,
            method: request.method(),
            request,
        }
    }

    /// The value of header `name` (any case), as `Headers.get` gives it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.lines.get(name)
    }

    /// The names of the request's headers, lower-case.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.lines.names()
    }
}

pub async fn forward(
    req: web_sys::Request,
    url: &UrlParts<'_>,
    app: &App,
) -> Result<web_sys::Response, AppError> {
    let incoming = Incoming::new(req);
    let Some(presented) = incoming.header("x-api-key") else {
        let fetched = JsFuture::from(start_forward(&incoming, url, app, None)?).await;
        return forwarded(fetched);
    };
    // 401 for a key that is not valid here, 403 from outside its allow-list.
    let admitted = authorize(&incoming, app.validate_key(presented).await?)?;
    let assertion = app
        .identity_assertion(&admitted, &incoming.method, url.path)
        .await?;
    let identity = Some((&admitted, assertion));
    let fetched = JsFuture::from(start_forward(&incoming, url, app, identity)?).await;
    forwarded(fetched)
}

/// The scope check of a valid key: a framework that honours a method override would run the
/// overriding method, so the key must allow that one too.
pub fn authorize(incoming: &Incoming, admitted: Admitted) -> Result<Admitted, AppError> {
    let overrides = METHOD_OVERRIDE_HEADERS
        .iter()
        .filter_map(|&name| incoming.header(name));
    let needed = Needed::for_request(&incoming.method, overrides);
    if !admitted.scopes.allows(needed) {
        return Err(AppError::Forbidden(format!(
            "This key needs the {} scope for this request.",
            needed.as_str()
        )));
    }
    Ok(admitted)
}

/// Starts the request to the origin: the client's headers, less every header that only the
/// edge may set, plus the edge's own, with the key's identity when one was admitted (and its
/// signed assertion: without one nothing is forwarded at all).
pub fn start_forward(
    incoming: &Incoming,
    url: &UrlParts<'_>,
    app: &App,
    identity: Option<(&Admitted, String)>,
) -> Result<js_sys::Promise, AppError> {
    let origin = app
        .config()
        .origin
        .as_ref()
        .ok_or(AppError::OriginNotConfigured)?;
    let target = origin.join(url.path, url.query);
    let method = incoming.method.as_str();

    // The client's headers are copied inside the runtime, less what only the edge may set,
    // whatever the credential, and then the edge sets its own. Both lists cross joined with
    // newlines (`boundary::forward_headers`), so they are written joined.
    let mut removed = String::new();
    for name in incoming.names() {
        if name == "host" || forwarding::is_edge_owned(name) {
            if !removed.is_empty() {
                removed.push('\n');
            }
            removed.push_str(name);
        }
    }
    let host = incoming.header("host").unwrap_or_default();
    let proto = url
        .origin
        .split_once("://")
        .map_or("https", |(scheme, _)| scheme);
    let mut key_id = Uuid::encode_buffer();
    let keyed = identity.as_ref().map(|(admitted, assertion)| {
        let key_id = admitted.key_id.hyphenated().encode_lower(&mut key_id);
        [&*key_id, admitted.scopes.as_str(), assertion.as_str()]
    });
    let values = [app.tenant().as_str(), host, proto]
        .into_iter()
        .chain(keyed.into_iter().flatten())
        .collect::<Vec<&str>>()
        .join("\n");
    let headers = boundary::with(|n| {
        let names = match identity {
            Some(_) => &n.edge_keyed,
            None => &n.edge_anonymous,
        };
        boundary::forward_headers(&incoming.headers, &removed, names, &values)
    })
    .map_err(js_internal("headers"))?;

    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    // The body is streamed through, never buffered. A GET or HEAD is forwarded without one:
    // it has no meaning there (RFC 9110), and the runtime's fetch refuses to send it.
    if !matches!(method, "GET" | "HEAD") {
        if let Some(body) = incoming.request.body() {
            init.set_body(&body);
        }
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(global.fetch_with_str_and_init(&target, &init))
}

/// The origin's answer as this Worker's response; 502 when the origin could not be reached.
pub fn forwarded(fetched: Result<JsValue, JsValue>) -> Result<web_sys::Response, AppError> {
    let fetched = fetched.map_err(|_| AppError::OriginUnreachable)?;
    http::with_mutable_headers(fetched.unchecked_into())
}
