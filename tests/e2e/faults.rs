//! Faults, each on a Worker instance of its own: D1 without its schema, no KV binding, and an
//! origin that is down. None may produce a 500, a panic or internal detail in a body.

use crate::harness::*;
use crate::trials;
use rally_edge_keys::domain::{
    cache_entry::{CacheEntry, Grant},
    key::PlainKey,
};
use serde_json::json;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("faults":
        without_the_d1_schema_management_is_503_and_cached_keys_still_validate,
        without_kv_validation_falls_back_to_d1_and_a_down_origin_is_502,
    )
}

const TENANT: &str = "faults";
/// A key whose grant is written straight into the KV of the instance without a D1 schema.
const CACHED_KEY: &str = "rk_live_0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";
const CACHED_KEY_ID: &str = "0b7e6c1e-4f3a-4d7a-9c55-2f2b6f1d9a01";

/// Before the "no-d1-schema" instance starts (harness::INSTANCES): writes CACHED_KEY's grant
/// straight into its KV.
pub fn seed_cached_key(no_schema: &Instance) {
    let grant = CacheEntry::Grant(Grant {
        key_id: CACHED_KEY_ID.parse().unwrap(),
        tenant: TENANT.into(),
        scopes: "read,write".into(),
        expires_at: None,
        valid_until: None,
        // Written by hand, so fresh for as long as the run may take.
        fresh_until: (now_seconds() + 3600) * 1000,
        allowed_ips: None,
    });
    let name = format!(
        "managed/{}",
        PlainKey::parse(CACHED_KEY).unwrap().hash().cache_id()
    );
    let value = serde_json::to_string(&grant).unwrap();
    no_schema.wrangler(
        &[
            "kv",
            "key",
            "put",
            &name,
            &value,
            "--binding",
            "API_KEY_CACHE",
            "--local",
        ],
        "seed KV",
    );
}

fn admin() -> String {
    format!("Bearer {}", session_token(TENANT, "admin"))
}

/// No body may carry internal detail: SQL errors, binding names, Rust panics.
fn assert_no_internal_detail(response: &Response) {
    let text = response.text().to_lowercase();
    for leak in [
        "no such table",
        "d1_",
        "sqlite",
        "binding",
        "panicked",
        "kv get",
        "kv put",
        "at src/",
    ] {
        assert!(!text.contains(leak), "{leak:?} in {}", response.text());
    }
}

fn without_the_d1_schema_management_is_503_and_cached_keys_still_validate() {
    let port = instance("no-d1-schema").port;
    let admin = admin();
    let list = send(
        port,
        "GET",
        TENANT,
        "/api/v1/api-keys",
        &[("Authorization", &admin)],
        None,
    );
    let create = send(
        port,
        "POST",
        TENANT,
        "/api/v1/api-keys",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"name": "x"}"#),
    );
    for response in [&list, &create] {
        assert_eq!(
            (response.status, response.code()),
            (503, "service_unavailable".to_string()),
            "{}",
            response.text()
        );
        assert_no_internal_detail(response);
    }
    // The key in KV still gets through, with its identity, and reaches the (recording) origin.
    let path = unique_path("d1-down");
    let forwarded = send(
        port,
        "GET",
        TENANT,
        &path,
        &[("X-Api-Key", CACHED_KEY)],
        None,
    );
    assert_eq!(forwarded.status, 200, "{}", forwarded.text());
    let received = worker().origin.received(&path);
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("X-Rally-Api-Key-Id"),
        Some(CACHED_KEY_ID)
    );
    // This instance is wrangler.toml's Worker alone: its own gate answered. What the front
    // Worker hands over (marked so) skips that gate for the handler, with the same answer.
    let log_path = &instance("no-d1-schema").log_path;
    let lane = |response: &Response| {
        let line = log_line_in(log_path, response.header("X-Request-Id").unwrap());
        line["lane"].as_str().map(String::from)
    };
    assert_eq!(lane(&forwarded).as_deref(), Some("gate"));
    let handed_over = send(
        port,
        "GET",
        TENANT,
        &unique_path("d1-down"),
        &[("X-Api-Key", CACHED_KEY), ("X-Rally-Handed-Over", "0")],
        None,
    );
    assert_eq!(handed_over.status, 200, "{}", handed_over.text());
    assert_eq!(lane(&handed_over).as_deref(), Some("handler"));
    // A key that is not cached needs D1: 503, not 401 and not 500.
    let unknown = send(
        port,
        "GET",
        TENANT,
        &unique_path("d1-down"),
        &[("X-Api-Key", "rk_live_1234567890abcdef1234567890abcdef")],
        None,
    );
    assert_eq!(
        (unknown.status, unknown.code()),
        (503, "service_unavailable".to_string())
    );
    assert_no_internal_detail(&unknown);
}

fn without_kv_validation_falls_back_to_d1_and_a_down_origin_is_502() {
    let no_kv = instance("no-kv");
    let admin = admin();
    let created = send(
        no_kv.port,
        "POST",
        TENANT,
        "/api/v1/api-keys",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        Some(json!({"name": "no cache"}).to_string().as_bytes()),
    );
    assert_eq!(
        created.status,
        201,
        "a key is created even when the cache cannot be written: {}",
        created.text()
    );
    let created = created.json();
    let key = created["key"].as_str().unwrap();

    // Validated through D1 (the cache is bypassed), then forwarded to an origin that is down.
    let response = send(
        no_kv.port,
        "GET",
        TENANT,
        &unique_path("no-kv"),
        &[("X-Api-Key", key)],
        None,
    );
    assert_eq!(
        (response.status, response.code()),
        (502, "origin_unreachable".to_string()),
        "{}",
        response.text()
    );
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    assert_no_internal_detail(&response);
    let line = log_line_in(&no_kv.log_path, response.header("X-Request-Id").unwrap());
    assert_eq!(
        (line["cache"].as_str(), line["d1Queries"].as_u64()),
        (Some("bypassed"), Some(1)),
        "{line}"
    );

    let bad = send(
        no_kv.port,
        "GET",
        TENANT,
        &unique_path("no-kv"),
        &[("X-Api-Key", "rk_live_abcdefabcdefabcdefabcdefabcdefab")],
        None,
    );
    assert_eq!(bad.status, 401);

    // A revocation is recorded in D1 but cannot reach the cache: the caller is told that
    // propagation failed (a retry is safe), and D1, which validation falls back to, already
    // refuses the key.
    let id = created["id"].as_str().unwrap();
    let revoke = send(
        no_kv.port,
        "DELETE",
        TENANT,
        &format!("/api/v1/api-keys/{id}"),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(
        (revoke.status, revoke.code()),
        (503, "propagation_failed".to_string())
    );
    assert_no_internal_detail(&revoke);
    assert_eq!(
        send(
            no_kv.port,
            "GET",
            TENANT,
            &unique_path("no-kv"),
            &[("X-Api-Key", key)],
            None
        )
        .status,
        401
    );
}
