//! Cursor decoding never panics, and a decoded cursor re-encodes to the same text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rally_edge_keys::domain::{
    cursor::{Cursor, List},
    tenant::Tenant,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tenant = Tenant::parse("acme").unwrap();
    for list in [List::ApiKeys, List::AuditEvents] {
        if let Some(cursor) = Cursor::decode(&text, list, &tenant, b"fuzz-secret") {
            assert_eq!(cursor.encode(list, &tenant, b"fuzz-secret"), text);
        }
    }
});
