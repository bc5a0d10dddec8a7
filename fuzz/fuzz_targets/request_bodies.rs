//! The management request-body parsers never panic on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rally_edge_keys::domain::request_body;

fuzz_target!(|data: &[u8]| {
    let _ = request_body::parse_create(data, 1_700_000_000_000);
    let _ = request_body::parse_patch(data);
    let _ = request_body::parse_rotate(data);
});
