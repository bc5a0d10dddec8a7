//! What the gateway hands to the runtime, made cheap to hand over. Every call from wasm into
//! JavaScript is a crossing, and every `&str` passed is decoded out of the wasm memory (a
//! `TextDecoder` call whose fixed cost dwarfs a short string's length): on the forwarded path
//! that was about thirty crossings and twenty decodes a request (`make profile`: `decode`,
//! `wasm-to-js`). So the constant strings (header names, a header value, the signature
//! algorithm) are made as JavaScript strings once per isolate, and the calls that come in runs
//! (the KV read of the three places, the request's headers, the forwarded headers) are one
//! crossing each, their strings joined with a newline, which no header name or value and no KV
//! key of this service contains. What to read, remove and set is still decided in Rust.

use wasm_bindgen::prelude::*;
use worker::js_sys::{self, JsString};
use worker::web_sys;

macro_rules! names {
    ($($name:ident = $text:literal,)*) => {
        /// The strings, made on first use in each isolate.
        pub struct Names {
            $(pub $name: JsString,)*
            /// The names of the headers the edge sets on a forwarded request: without a key,
            /// and with one, in the order of `forward_headers`' values.
            pub edge_anonymous: js_sys::Array,
            pub edge_keyed: js_sys::Array,
        }

        impl Names {
            fn new() -> Names {
                Names {
                    $($name: JsString::from($text),)*
                    edge_anonymous: EDGE_ANONYMOUS.iter().map(|&h| JsValue::from(h)).collect(),
                    edge_keyed: EDGE_ANONYMOUS
                        .iter()
                        .chain(EDGE_KEYED)
                        .map(|&h| JsValue::from(h))
                        .collect(),
                }
            }
        }
    };
}

/// The edge's own headers on every forwarded request, and those added for an admitted key.
pub const EDGE_ANONYMOUS: &[&str] = &["x-rally-tenant", "x-forwarded-host", "x-forwarded-proto"];
pub const EDGE_KEYED: &[&str] = &["x-rally-api-key-id", "x-rally-scopes", "x-rally-identity"];

names! {
    x_request_id = "x-request-id",
    x_content_type_options = "x-content-type-options",
    nosniff = "nosniff",
    content_type = "content-type",
    application_json = "application/json",
    ed25519 = "Ed25519",
}

thread_local! {
    static NAMES: Names = Names::new();
}

/// A name from `Names`.
pub type Pick = fn(&Names) -> &JsString;

/// Runs `f` with the isolate's strings.
pub fn with<R>(f: impl FnOnce(&Names) -> R) -> R {
    NAMES.with(f)
}

#[wasm_bindgen(inline_js = r#"
export function read_all(kv, keys) {
  const names = keys.split("\n");
  return kv.get(names).then((found) => names.map((name) => found.get(name) ?? null));
}
export function header_lines(headers) {
  let joined = "";
  for (const [name, value] of headers) joined += name + "\n" + value + "\n";
  return joined;
}
export function forward_headers(incoming, removed, names, values) {
  const headers = new Headers(incoming);
  if (removed !== "") for (const name of removed.split("\n")) headers.delete(name);
  const each = values.split("\n");
  for (let i = 0; i < names.length; i++) headers.set(names[i], each[i]);
  return headers;
}
"#)]
extern "C" {
    /// The values of `keys` (joined with newlines) in a KV namespace, in their order, `null` for
    /// a key without one: one bulk read, a single request to KV rather than one per key.
    #[wasm_bindgen(catch)]
    pub fn read_all(kv: &JsValue, keys: &str) -> Result<js_sys::Promise, JsValue>;

    /// Every header of a list as a name line and a value line, names lower-case as the
    /// runtime keeps them.
    pub fn header_lines(headers: &web_sys::Headers) -> String;

    /// A copy of `incoming` without the `removed` names (joined with newlines), with `names`
    /// set to `values` (joined with newlines).
    #[wasm_bindgen(catch)]
    pub fn forward_headers(
        incoming: &web_sys::Headers,
        removed: &str,
        names: &js_sys::Array,
        values: &str,
    ) -> Result<web_sys::Headers, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// `Headers`, called with names that are already JavaScript strings.
    #[wasm_bindgen(js_name = Headers)]
    type NamedHeaders;

    #[wasm_bindgen(method, catch, js_name = set)]
    fn set_named(this: &NamedHeaders, name: &JsString, value: &str) -> Result<(), JsValue>;

    #[wasm_bindgen(method, catch, js_name = set)]
    fn set_both_named(
        this: &NamedHeaders,
        name: &JsString,
        value: &JsString,
    ) -> Result<(), JsValue>;
}

fn named(headers: &web_sys::Headers) -> &NamedHeaders {
    headers.unchecked_ref()
}

/// `headers.set(name, value)`.
pub fn set(headers: &web_sys::Headers, name: Pick, value: &str) -> Result<(), JsValue> {
    with(|names| named(headers).set_named(name(names), value))
}

/// `headers.set(name, value)`, both constant.
pub fn set_constant(headers: &web_sys::Headers, name: Pick, value: Pick) -> Result<(), JsValue> {
    with(|names| named(headers).set_both_named(name(names), value(names)))
}
