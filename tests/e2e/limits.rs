//! The failed-authentication rate limit (20 failures per client IP per 60 s) and the headers
//! every response carries.

use crate::harness::*;
use crate::trials;
use serde_json::json;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("limits":
        repeated_failed_authentication_from_one_ip_gets_429_without_touching_storage,
        a_client_blocked_on_the_fast_path_is_refused_lookups_that_would_reach_d1,
        every_kind_of_response_has_nosniff_and_keys_are_never_cached,
    )
}

/// A random documentation address (RFC 3849), so that reruns within a minute never share one.
fn client_ip() -> String {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).unwrap();
    let groups: Vec<String> = random
        .chunks(2)
        .map(|c| format!("{:x}", u16::from_be_bytes([c[0], c[1]])))
        .collect();
    format!("2001:db8:ffff::{}", groups.join(":"))
}

fn repeated_failed_authentication_from_one_ip_gets_429_without_touching_storage() {
    let tenant = TestTenant::new("ratelimit");
    let key = tenant.create_key(json!({"name": "valid"}))["key"]
        .as_str()
        .unwrap()
        .to_string();
    let attacker = client_ip();
    for attempt in 1..=20 {
        let guess = format!("rk_live_{:032x}", attempt);
        let response = get(
            &tenant.name,
            &unique_path("guess"),
            &[("X-Api-Key", &guess), ("CF-Connecting-IP", &attacker)],
        );
        assert_eq!(response.status, 401, "attempt {attempt}");
    }
    // The 21st failure is refused, unless the limiter's fixed 60 s window turned over during
    // the first 20 (a loaded machine): then keep failing, within a bound, until it is.
    let mut limited = get(
        &tenant.name,
        &unique_path("guess"),
        &[
            ("X-Api-Key", "rk_live_ffff"),
            ("CF-Connecting-IP", &attacker),
        ],
    );
    for _ in 0..40 {
        if limited.status != 401 {
            break;
        }
        limited = get(
            &tenant.name,
            &unique_path("guess"),
            &[
                ("X-Api-Key", "rk_live_ffff"),
                ("CF-Connecting-IP", &attacker),
            ],
        );
    }
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limited".to_string()),
        "{}",
        limited.text()
    );
    let retry_after: u32 = limited.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));

    // Once blocked, the client is refused every lookup that would reach D1 ...
    let _ = assert_a_lookup_is_refused_without_d1(&tenant.name, &attacker);
    // ... but a key that the cache already grants still gets through: the limit protects
    // storage, not at the cost of valid keys behind a shared address.
    let path = unique_path("blocked-valid");
    let valid = get(
        &tenant.name,
        &path,
        &[("X-Api-Key", &key), ("CF-Connecting-IP", &attacker)],
    );
    assert_eq!(valid.status, 200, "{}", valid.text());
    let line = log_line(valid.header("X-Request-Id").unwrap());
    assert_eq!(
        (line["cache"].as_str(), line["d1Queries"].as_u64()),
        (Some("hit"), Some(0)),
        "{line}"
    );
    assert_eq!(worker().origin.received(&path).len(), 1);
    let session = get(
        &tenant.name,
        "/api/v1/api-keys",
        &[
            ("Authorization", tenant.admin.as_str()),
            ("CF-Connecting-IP", &attacker),
        ],
    );
    assert_eq!(session.status, 429);

    // Everyone else is unaffected.
    let other_ip = client_ip();
    assert_eq!(
        get(
            &tenant.name,
            &unique_path("ok"),
            &[("X-Api-Key", &key), ("CF-Connecting-IP", &other_ip)]
        )
        .status,
        200
    );
    assert_eq!(
        get(&tenant.name, "/api/v1/api-keys", &tenant.admin_headers()).status,
        200
    );
}

/// A block that the fast path learns, from failures that the cache decides, holds for every
/// lookup that would reach D1, although the handler that makes those lookups is in another
/// Worker behind the front one (README, "The front Worker"), which has not seen the block.
fn a_client_blocked_on_the_fast_path_is_refused_lookups_that_would_reach_d1() {
    let tenant = TestTenant::new("ratelimit-gate");
    let attacker = client_ip();
    let unknown = random_key();
    let attempt = || {
        get(
            &tenant.name,
            &unique_path("guess"),
            &[("X-Api-Key", &unknown), ("CF-Connecting-IP", &attacker)],
        )
    };
    // The first attempt reads D1 and leaves a negative entry; the fast path answers the rest.
    // Keep failing, within a bound, until the limiter says no (its fixed 60 s window may turn
    // over on a loaded machine).
    let mut limited = attempt();
    for _ in 0..60 {
        if limited.status == 429 {
            break;
        }
        assert_eq!(limited.status, 401, "{}", limited.text());
        limited = attempt();
    }
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limited".to_string())
    );
    let line = log_line(limited.header("X-Request-Id").unwrap());
    assert_eq!(
        (line["lane"].as_str(), line["cache"].as_str()),
        (Some("front"), Some("negative")),
        "{line}"
    );

    // A lookup is refused then, by the front Worker's gate itself: no hand-over.
    let line = assert_a_lookup_is_refused_without_d1(&tenant.name, &attacker);
    assert_eq!(line["lane"], "front", "{line}");
}

/// A key never seen, which no cache entry decides, from a blocked client: 429 without reading
/// D1, and nothing forwarded. Gives the request's log line.
fn assert_a_lookup_is_refused_without_d1(tenant: &str, client: &str) -> serde_json::Value {
    let path = unique_path("blocked");
    let never_seen = random_key();
    let again = get(
        tenant,
        &path,
        &[("X-Api-Key", &never_seen), ("CF-Connecting-IP", client)],
    );
    assert_eq!(
        (again.status, again.code()),
        (429, "rate_limited".to_string()),
        "{}",
        again.text()
    );
    let line = log_line(again.header("X-Request-Id").unwrap());
    assert_eq!(
        (line["cache"].as_str(), line["d1Queries"].as_u64()),
        (Some("blocked"), Some(0)),
        "{line}"
    );
    assert!(worker().origin.received(&path).is_empty());
    line
}

/// A well-formed key that no one was ever given.
fn random_key() -> String {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).unwrap();
    format!("rk_live_{}", hex::encode(random))
}

fn every_kind_of_response_has_nosniff_and_keys_are_never_cached() {
    let tenant = TestTenant::new("headers");
    let created = send_json(
        "POST",
        &tenant.name,
        "/api/v1/api-keys",
        &tenant.admin_headers(),
        &json!({"name": "k"}),
    );
    let id = created.json()["id"].as_str().unwrap().to_string();
    let key = created.json()["key"].as_str().unwrap().to_string();
    let rotated = request(
        "POST",
        &tenant.name,
        &format!("/api/v1/api-keys/{id}/rotate"),
        &tenant.admin_headers(),
        None,
    );
    let new_key = rotated.json()["key"].as_str().unwrap().to_string();
    let responses = [
        ("create", created),
        ("rotate", rotated),
        (
            "list",
            get(&tenant.name, "/api/v1/api-keys", &tenant.admin_headers()),
        ),
        (
            "forwarded",
            get(&tenant.name, &unique_path("h"), &[("X-Api-Key", &new_key)]),
        ),
        (
            "401",
            get(&tenant.name, &unique_path("h"), &[("X-Api-Key", &key)]),
        ),
        (
            "404",
            get(
                &tenant.name,
                "/api/v1/api-keys/nope",
                &tenant.admin_headers(),
            ),
        ),
        (
            "405",
            request(
                "PUT",
                &tenant.name,
                "/api/v1/api-keys",
                &tenant.admin_headers(),
                None,
            ),
        ),
        ("400 host", get("bad_host.example", "/healthz", &[])),
        (
            "204",
            request(
                "DELETE",
                &tenant.name,
                &format!("/api/v1/api-keys/{id}"),
                &tenant.admin_headers(),
                None,
            ),
        ),
    ];
    for (label, response) in &responses {
        assert_eq!(
            response.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{label}"
        );
        assert!(response.header("X-Request-Id").is_some(), "{label}");
        let carries_key = [&key, &new_key]
            .iter()
            .any(|k| response.text().contains(k.as_str()));
        assert_eq!(
            carries_key,
            matches!(*label, "create" | "rotate"),
            "{label}"
        );
        if carries_key {
            assert_eq!(
                response.header("Cache-Control"),
                Some("no-store"),
                "{label}"
            );
        }
    }
}
