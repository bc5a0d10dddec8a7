//! Signs identity assertions with the runtime's Web Crypto Ed25519: native in workerd, and no
//! signature code in the wasm. The private key is imported once per isolate and kept as a
//! non-extractable `CryptoKey`.

use crate::domain::identity::SigningKey;
use crate::error::AppError;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use worker::js_sys;
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `crypto.subtle`, with the two calls the signer makes.
    type SubtleCrypto;

    #[wasm_bindgen(method, catch, js_name = importKey)]
    fn import_key(
        this: &SubtleCrypto,
        format: &str,
        key: &JsValue,
        algorithm: &str,
        extractable: bool,
        usages: &js_sys::Array,
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn sign(
        this: &SubtleCrypto,
        algorithm: &str,
        key: &JsValue,
        data: &[u8],
    ) -> Result<js_sys::Promise, JsValue>;
}

thread_local! {
    /// (kid, CryptoKey) of the imported signing key.
    static IMPORTED: RefCell<Option<(String, JsValue)>> = const { RefCell::new(None) };
}

fn subtle() -> Result<SubtleCrypto, JsValue> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?;
    Ok(js_sys::Reflect::get(&crypto, &"subtle".into())?.unchecked_into())
}

/// Any failure of the key (Web Crypto refusing it, say) is the same answer as no key at all:
/// nothing is forwarded without an assertion.
fn not_configured(_: JsValue) -> AppError {
    AppError::IdentityNotConfigured
}

async fn crypto_key(subtle: &SubtleCrypto, key: &SigningKey) -> Result<JsValue, AppError> {
    let cached = IMPORTED.with(|imported| {
        imported
            .borrow()
            .as_ref()
            .filter(|(kid, _)| *kid == key.kid)
            .map(|(_, crypto_key)| crypto_key.clone())
    });
    if let Some(crypto_key) = cached {
        return Ok(crypto_key);
    }
    let jwk = js_sys::JSON::parse(&key.private_jwk_json()).map_err(not_configured)?;
    let usages = js_sys::Array::of1(&"sign".into());
    let promise = subtle
        .import_key("jwk", &jwk, "Ed25519", false, &usages)
        .map_err(not_configured)?;
    let crypto_key = JsFuture::from(promise).await.map_err(not_configured)?;
    IMPORTED.with(|imported| *imported.borrow_mut() = Some((key.kid.clone(), crypto_key.clone())));
    Ok(crypto_key)
}

/// The Ed25519 signature of `input`.
pub async fn sign(key: &SigningKey, input: &str) -> Result<Vec<u8>, AppError> {
    let subtle = subtle().map_err(not_configured)?;
    let crypto_key = crypto_key(&subtle, key).await?;
    let promise = subtle
        .sign("Ed25519", &crypto_key, input.as_bytes())
        .map_err(not_configured)?;
    let signature = JsFuture::from(promise).await.map_err(not_configured)?;
    Ok(js_sys::Uint8Array::new(&signature).to_vec())
}
