//! JWT verification never panics, and never accepts a token it was not signed with.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rally_edge_keys::domain::jwt;

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    assert!(jwt::verify(&token, b"fuzz-secret", 1.0e9).is_err());
});
