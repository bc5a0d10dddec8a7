//! Scope lists canonicalise idempotently; key parsing accepts only the documented format.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rally_edge_keys::domain::{key::PlainKey, scopes::Scopes};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(scopes) = Scopes::parse(&text) {
        let canonical = scopes.to_string();
        assert_eq!(Scopes::parse(&canonical).unwrap().to_string(), canonical);
    }
    if let Some(key) = PlainKey::parse(&text) {
        assert_eq!(key.reveal().len(), 40);
        assert!(key.reveal()[8..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
});
