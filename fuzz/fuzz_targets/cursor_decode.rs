//! Cursor decoding never panics, and a decoded cursor re-encodes to the same text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rally_edge_keys::domain::{cursor::Cursor, tenant::Tenant};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tenant = Tenant::parse("acme").unwrap();
    if let Some(cursor) = Cursor::decode(&text, &tenant, b"fuzz-secret") {
        assert_eq!(cursor.encode(&tenant, b"fuzz-secret"), text);
    }
});
