//! Signatures with the runtime's Web Crypto: Ed25519 signing of identity assertions, and ECDSA
//! P-256 verification of secret-scanning alerts. Both are native in workerd, so no signature
//! code is in the wasm. Keys are imported once per isolate and kept as non-extractable
//! `CryptoKey`s.

use crate::boundary;
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
        algorithm: &js_sys::JsString,
        key: &JsValue,
        data: &[u8],
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = importKey)]
    fn import_spki(
        this: &SubtleCrypto,
        format: &str,
        key: &[u8],
        algorithm: &JsValue,
        extractable: bool,
        usages: &js_sys::Array,
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn verify(
        this: &SubtleCrypto,
        algorithm: &JsValue,
        key: &JsValue,
        signature: &[u8],
        data: &[u8],
    ) -> Result<js_sys::Promise, JsValue>;
}

thread_local! {
    /// (kid, CryptoKey) of the imported signing key.
    static IMPORTED: RefCell<Option<(String, JsValue)>> = const { RefCell::new(None) };
    /// (key identifier, CryptoKey) of the secret-scanning public keys imported so far.
    static VERIFYING: RefCell<Vec<(String, JsValue)>> = const { RefCell::new(Vec::new()) };
}

/// `crypto.subtle`, looked up once per isolate: two property reads across the boundary on
/// every signature otherwise.
fn subtle() -> Result<SubtleCrypto, JsValue> {
    thread_local! {
        static SUBTLE: RefCell<Option<JsValue>> = const { RefCell::new(None) };
    }
    if let Some(subtle) = SUBTLE.with(|s| s.borrow().clone()) {
        return Ok(subtle.unchecked_into());
    }
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?;
    let subtle = js_sys::Reflect::get(&crypto, &"subtle".into())?;
    SUBTLE.with(|s| *s.borrow_mut() = Some(subtle.clone()));
    Ok(subtle.unchecked_into())
}

/// Any failure of the key (Web Crypto refusing it, say) is the same answer as no key at all:
/// nothing is forwarded without an assertion.
fn not_configured(_: JsValue) -> AppError {
    AppError::IdentityNotConfigured
}

/// The `CryptoKey` of `key`, if this isolate has imported it.
fn imported(key: &SigningKey) -> Option<JsValue> {
    IMPORTED.with(|imported| {
        imported
            .borrow()
            .as_ref()
            .filter(|(kid, _)| *kid == key.kid)
            .map(|(_, crypto_key)| crypto_key.clone())
    })
}

async fn crypto_key(subtle: &SubtleCrypto, key: &SigningKey) -> Result<JsValue, AppError> {
    if let Some(crypto_key) = imported(key) {
        return Ok(crypto_key);
    }
    let promise = start_import_with(subtle, key)?;
    let crypto_key = JsFuture::from(promise).await.map_err(not_configured)?;
    remember(key, &crypto_key);
    Ok(crypto_key)
}

/// Starts importing `key`, without an await: the promise gives the `CryptoKey` for `remember`.
pub fn start_import(key: &SigningKey) -> Result<js_sys::Promise, AppError> {
    start_import_with(&subtle().map_err(not_configured)?, key)
}

fn start_import_with(subtle: &SubtleCrypto, key: &SigningKey) -> Result<js_sys::Promise, AppError> {
    let jwk = js_sys::JSON::parse(&key.private_jwk_json()).map_err(not_configured)?;
    let usages = js_sys::Array::of1(&"sign".into());
    subtle
        .import_key("jwk", &jwk, "Ed25519", false, &usages)
        .map_err(not_configured)
}

/// Keeps the imported `key` for this isolate's later signatures.
pub fn remember(key: &SigningKey, crypto_key: &JsValue) {
    IMPORTED.with(|imported| *imported.borrow_mut() = Some((key.kid.clone(), crypto_key.clone())));
}

/// The Ed25519 signature of `input`.
pub async fn sign(key: &SigningKey, input: &str) -> Result<Vec<u8>, AppError> {
    let subtle = subtle().map_err(not_configured)?;
    let crypto_key = crypto_key(&subtle, key).await?;
    let promise = start(&subtle, &crypto_key, input)?;
    let signature = JsFuture::from(promise).await.map_err(not_configured)?;
    Ok(signature_bytes(&signature))
}

/// Starts the signature of `input` when this isolate has already imported `key` (every
/// request after the first), without an await: the promise gives what `signature_bytes`
/// reads. None when the key still has to be imported (`start_import`).
pub fn start_if_imported(
    key: &SigningKey,
    input: &str,
) -> Option<Result<js_sys::Promise, AppError>> {
    Some(start_signing(&imported(key)?, input))
}

/// Starts the signature of `input` with an imported key (`start_import`'s), without an await:
/// the promise gives what `signature_bytes` reads.
pub fn start_signing(crypto_key: &JsValue, input: &str) -> Result<js_sys::Promise, AppError> {
    start(&subtle().map_err(not_configured)?, crypto_key, input)
}

fn start(
    subtle: &SubtleCrypto,
    crypto_key: &JsValue,
    input: &str,
) -> Result<js_sys::Promise, AppError> {
    boundary::with(|names| subtle.sign(&names.ed25519, crypto_key, input.as_bytes()))
        .map_err(not_configured)
}

/// The bytes of the `ArrayBuffer` that a signature's promise gave.
pub fn signature_bytes(signature: &JsValue) -> Vec<u8> {
    js_sys::Uint8Array::new(signature).to_vec()
}

/// `{name: "ECDSA", namedCurve: "P-256", hash: "SHA-256"}`: the one object serves both the
/// import (which reads the curve) and the verification (which reads the hash).
fn ecdsa_p256_sha256() -> Result<JsValue, JsValue> {
    let algorithm = js_sys::Object::new();
    for (name, value) in [
        ("name", "ECDSA"),
        ("namedCurve", "P-256"),
        ("hash", "SHA-256"),
    ] {
        js_sys::Reflect::set(&algorithm, &name.into(), &value.into())?;
    }
    Ok(algorithm.into())
}

/// Whether `signature` (raw r and s) is a valid ECDSA P-256/SHA-256 signature of `data` by the
/// public key `spki` (DER SubjectPublicKeyInfo) named `identifier`. A key Web Crypto refuses
/// verifies nothing.
pub async fn verify_p256(
    identifier: &str,
    spki: &[u8],
    signature: &[u8; 64],
    data: &[u8],
) -> Result<bool, AppError> {
    let unusable = |e: JsValue| AppError::Internal(format!("ECDSA: {e:?}"));
    let subtle = subtle().map_err(unusable)?;
    let algorithm = ecdsa_p256_sha256().map_err(unusable)?;
    let cached = VERIFYING.with(|keys| {
        keys.borrow()
            .iter()
            .find(|(id, _)| id == identifier)
            .map(|(_, key)| key.clone())
    });
    let key = match cached {
        Some(key) => key,
        None => {
            let usages = js_sys::Array::of1(&"verify".into());
            let promise = subtle
                .import_spki("spki", spki, &algorithm, false, &usages)
                .map_err(unusable)?;
            let Ok(key) = JsFuture::from(promise).await else {
                return Ok(false);
            };
            VERIFYING.with(|keys| {
                let mut keys = keys.borrow_mut();
                // GitHub publishes a handful of keys; a few more than that are never needed.
                if keys.len() >= 16 {
                    keys.remove(0);
                }
                keys.push((identifier.to_string(), key.clone()));
            });
            key
        }
    };
    let promise = subtle
        .verify(&algorithm, &key, signature, data)
        .map_err(unusable)?;
    Ok(JsFuture::from(promise)
        .await
        .is_ok_and(|valid| valid.is_truthy()))
}
