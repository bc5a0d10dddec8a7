//! Host parsing never panics, and whatever it accepts is one valid tenant label.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rally_edge_keys::domain::tenant::Tenant;

fuzz_target!(|data: &[u8]| {
    let host = String::from_utf8_lossy(data);
    if let Some(tenant) = Tenant::from_host(&host, "rallycrm.io") {
        assert!(Tenant::parse(tenant.as_str()).is_some());
    }
});
