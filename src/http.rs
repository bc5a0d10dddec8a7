//! HTTP helpers for the Worker: JSON responses, the error response, and bounded JSON bodies.

use crate::boundary;
use crate::error::AppError;
use crate::query::split_url;
use serde::Serialize;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Request, Response};

/// Bodies over this size get 413: 16 KiB, far above any management body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn internal(context: &str) -> impl Fn(worker::Error) -> AppError + '_ {
    move |e| AppError::Internal(format!("{context}: {e}"))
}

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

pub fn json<T: Serialize>(status: u16, value: &T) -> Result<Response, AppError> {
    Ok(Response::from_json(value)
        .map_err(internal("encode json"))?
        .with_status(status))
}

/// For the responses that carry a key: no cache anywhere may keep them.
pub fn no_store(mut response: Response) -> Result<Response, AppError> {
    response
        .headers_mut()
        .set("Cache-Control", "no-store")
        .map_err(internal("header"))?;
    Ok(response)
}

/// The error body, rendered by `AppError::body`, with the headers the error needs. Made on the
/// runtime's own objects: `worker::Response` would build the body as bytes in a `Uint8Array`
/// and its init field by field, which showed in the rejections' profiles (edge bench).
pub fn error_response(error: &AppError) -> web_sys::Response {
    let headers = web_sys::Headers::new().expect("an empty Headers always builds");
    let _ = boundary::set_constant(&headers, |n| &n.content_type, |n| &n.application_json);
    for (name, value) in error.headers() {
        let _ = headers.set(name, &value);
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(error.status());
    init.set_headers(&headers);
    web_sys::Response::new_with_opt_str_and_init(Some(&error.body()), &init)
        .expect("a string body with a valid status always builds")
}

fn is_json(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// Reads a JSON body of at most 16 KiB. With `optional`, a request with no body at all (no
/// Content-Type and nothing sent) gives an empty body instead of 415.
pub async fn read_json_body(req: &mut Request, optional: bool) -> Result<Vec<u8>, AppError> {
    let content_type = header(req, "Content-Type");
    let declared_length = header(req, "Content-Length").and_then(|l| l.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|l| l > MAX_BODY_BYTES as u64) {
        return Err(AppError::PayloadTooLarge);
    }
    match content_type.as_deref() {
        Some(ct) if is_json(ct) => read_bounded(req.inner().body(), MAX_BODY_BYTES).await,
        None if optional => {
            let body = read_bounded(req.inner().body(), MAX_BODY_BYTES).await?;
            if body.is_empty() {
                Ok(body)
            } else {
                Err(AppError::UnsupportedMediaType)
            }
        }
        _ => Err(AppError::UnsupportedMediaType),
    }
}

/// Reads a body as a stream and stops at the first chunk past `limit` bytes (413): a chunked
/// body declares no length, and must not be held whole in memory before it is refused.
pub async fn read_bounded(
    body: Option<web_sys::ReadableStream>,
    limit: usize,
) -> Result<Vec<u8>, AppError> {
    let Some(stream) = body else {
        return Ok(Vec::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(js_internal("read body"))?;
        let done =
            js_sys::Reflect::get(&chunk, &"done".into()).map_err(js_internal("read body"))?;
        if done.is_truthy() {
            return Ok(body);
        }
        let value =
            js_sys::Reflect::get(&chunk, &"value".into()).map_err(js_internal("read body"))?;
        let bytes: js_sys::Uint8Array = value.unchecked_into();
        if body.len() + bytes.length() as usize > limit {
            // The rest is never read; cancelling tells the runtime to drop it.
            let _ = reader.cancel();
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&bytes.to_vec());
    }
}

/// The request URL's origin (`scheme://host[:port]`) and query.
pub fn origin_and_query(req: &Request) -> (String, Option<String>) {
    let url = req.inner().url();
    let parts = split_url(&url);
    (parts.origin.to_string(), parts.query.map(String::from))
}

pub fn js_internal(context: &str) -> impl Fn(JsValue) -> AppError + '_ {
    move |e| AppError::Internal(format!("{context}: {e:?}"))
}

/// A fetched response (from the origin or the assets) has immutable headers. This wraps the same
/// streamed body in a new response whose headers the edge can add to. The fetched response is
/// itself the init (`new Response(body, fetched)`, which the runtime accepts): status, status
/// text and headers are copied inside the runtime, none of them through the wasm.
pub fn with_mutable_headers(fetched: web_sys::Response) -> Result<web_sys::Response, AppError> {
    web_sys::Response::new_with_opt_readable_stream_and_init(
        fetched.body().as_ref(),
        fetched.unchecked_ref::<web_sys::ResponseInit>(),
    )
    .map_err(js_internal("response"))
}
