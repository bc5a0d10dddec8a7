//! The edge check in front of the CRM's routes, with the recording origin.

use crate::harness::*;
use crate::trials;
use serde_json::json;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("edge":
        a_valid_key_is_forwarded_with_identity_headers_and_no_spoofed_ones,
        a_request_without_a_key_is_forwarded_without_client_identity_headers,
        each_rejection_is_answered_at_the_edge_and_never_reaches_the_origin,
        unknown_revoked_expired_and_foreign_keys_get_byte_identical_401s,
        a_cached_key_is_validated_without_d1_and_unknown_keys_are_cached_negatively,
        a_malformed_key_touches_neither_kv_nor_d1,
        revocation_takes_effect_on_the_next_request,
        a_revocation_racing_many_requests_leaves_the_key_rejected,
        a_key_stops_working_when_it_expires,
        the_fast_path_and_the_handler_answer_every_cached_decision_alike,
    )
}

fn a_valid_key_is_forwarded_with_identity_headers_and_no_spoofed_ones() {
    let tenant = TestTenant::new("fwd");
    let created = tenant.create_key(json!({"name": "ETL", "scopes": "write,read"}));
    let key = created["key"].as_str().unwrap();
    let path = format!("{}?page=2&q=a%20b", unique_path("contacts"));
    let headers = [
        ("X-Api-Key", key),
        ("Content-Type", "application/json"),
        ("X-Rally-Tenant", "someone-else"),
        ("X-Rally-Api-Key-Id", "forged"),
        ("X-Rally-Scopes", "admin"),
        ("X-Rally-Admin", "true"),
        ("X-Custom", "kept"),
    ];
    let response = request(
        "POST",
        &tenant.name,
        &path,
        &headers,
        Some(br#"{"contact": "Ada"}"#),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json(), json!({"origin": "ok"}));
    assert!(response.header("X-Request-Id").is_some());
    let received = worker().origin.received(&path);
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.body, br#"{"contact": "Ada"}"#);
    assert_eq!(got.header("X-Rally-Tenant"), Some(tenant.name.as_str()));
    assert_eq!(got.header("X-Rally-Api-Key-Id"), created["id"].as_str());
    assert_eq!(got.header("X-Rally-Scopes"), Some("read,write"));
    assert_eq!(got.header("X-Custom"), Some("kept"));
    assert_eq!(got.header("X-Api-Key"), None);
    assert_eq!(got.header("X-Rally-Admin"), None);
    // Tenant, key id, scopes and the signed identity assertion (identity.rs checks it).
    assert_eq!(
        got.headers
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-rally-"))
            .count(),
        4
    );
}

fn a_request_without_a_key_is_forwarded_without_client_identity_headers() {
    let tenant = TestTenant::new("nokey");
    let path = unique_path("session");
    let response = get(
        &tenant.name,
        &path,
        &[
            ("Authorization", "Bearer crm-session"),
            ("X-Rally-Tenant", "forged"),
            ("X-Rally-Scopes", "admin"),
        ],
    );
    assert_eq!(response.status, 200);
    let received = worker().origin.received(&path);
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("Authorization"),
        Some("Bearer crm-session")
    );
    // Only the edge's own identity headers, naming the Host's tenant and no key.
    let rally: Vec<(String, String)> = received[0]
        .headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-rally-"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    assert_eq!(
        rally,
        vec![("x-rally-tenant".to_string(), tenant.name.clone())]
    );
}

fn each_rejection_is_answered_at_the_edge_and_never_reaches_the_origin() {
    let tenant = TestTenant::new("reject");
    let other = TestTenant::new("reject-other");
    let revoked = tenant.create_key(json!({"name": "revoked"}));
    let revoked_id = revoked["id"].as_str().unwrap();
    tenant.revoke(revoked_id);
    let read_only = tenant.create_key(json!({"name": "reader", "scopes": "read"}));
    let write_only = tenant.create_key(json!({"name": "writer", "scopes": "write"}));
    let foreign = other.create_key(json!({"name": "theirs", "scopes": "read,write"}));
    let cases = [
        ("malformed", "GET", "rk_live_XYZ", 401, "unauthorized"),
        (
            "unknown",
            "GET",
            "rk_live_ffffffffffffffffffffffffffffffff",
            401,
            "unauthorized",
        ),
        (
            "revoked",
            "GET",
            revoked["key"].as_str().unwrap(),
            401,
            "unauthorized",
        ),
        (
            "other tenant",
            "GET",
            foreign["key"].as_str().unwrap(),
            401,
            "unauthorized",
        ),
        (
            "read key writing",
            "DELETE",
            read_only["key"].as_str().unwrap(),
            403,
            "forbidden",
        ),
        (
            "write key reading",
            "GET",
            write_only["key"].as_str().unwrap(),
            403,
            "forbidden",
        ),
    ];
    for (label, method, key, status, code) in cases {
        let path = unique_path("reject");
        let response = request(method, &tenant.name, &path, &[("X-Api-Key", key)], None);
        assert_eq!(
            (response.status, response.code()),
            (status, code.to_string()),
            "{label}"
        );
        assert!(
            worker().origin.received(&path).is_empty(),
            "{label} reached the origin"
        );
    }
}

fn unknown_revoked_expired_and_foreign_keys_get_byte_identical_401s() {
    let tenant = TestTenant::new("same401");
    let other = TestTenant::new("same401-other");
    let revoked = tenant.create_key(json!({"name": "revoked"}));
    tenant.revoke(revoked["id"].as_str().unwrap());
    let expiring = tenant.create_key(json!({"name": "expiring", "expiresAt": chrono_in(2)}));
    let foreign = other.create_key(json!({"name": "theirs"}));
    wait_until_past(2);
    let keys = [
        "rk_live_abababababababababababababababab",
        revoked["key"].as_str().unwrap(),
        expiring["key"].as_str().unwrap(),
        foreign["key"].as_str().unwrap(),
        "not-even-a-key",
    ];
    let responses: Vec<Response> = keys
        .iter()
        .map(|k| get(&tenant.name, &unique_path("same"), &[("X-Api-Key", k)]))
        .collect();
    for r in &responses {
        assert_eq!(r.status, 401);
    }
    assert!(responses.windows(2).all(|w| w[0].body == w[1].body
        && w[0].header("WWW-Authenticate") == w[1].header("WWW-Authenticate")));
}

fn a_cached_key_is_validated_without_d1_and_unknown_keys_are_cached_negatively() {
    let tenant = TestTenant::new("cache");
    let key = tenant.create_key(json!({"name": "hot"}))["key"]
        .as_str()
        .unwrap()
        .to_string();
    // One round trip to KV that reads the entry's three places (denied, managed, filled).
    for _ in 0..2 {
        let response = get(&tenant.name, &unique_path("hot"), &[("X-Api-Key", &key)]);
        let line = log_line(response.header("X-Request-Id").unwrap());
        assert_eq!(
            (
                line["cache"].as_str(),
                line["d1Queries"].as_u64(),
                line["kvReads"].as_u64()
            ),
            (Some("hit"), Some(0), Some(3)),
            "{line}"
        );
    }
    let mut guess = [0u8; 16];
    getrandom::fill(&mut guess).unwrap();
    let guess = format!("rk_live_{}", hex::encode(guess));
    let first = get(
        &tenant.name,
        &unique_path("guess"),
        &[("X-Api-Key", &guess)],
    );
    let line = log_line(first.header("X-Request-Id").unwrap());
    assert_eq!(
        (line["cache"].as_str(), line["d1Queries"].as_u64()),
        (Some("miss"), Some(1)),
        "{line}"
    );
    // The negative entry is written off the response path; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = get(
            &tenant.name,
            &unique_path("guess"),
            &[("X-Api-Key", &guess)],
        );
        assert_eq!(again.status, 401);
        let line = log_line(again.header("X-Request-Id").unwrap());
        if line["cache"] == "negative" {
            assert_eq!(line["d1Queries"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "no negative cache entry: {line}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn a_malformed_key_touches_neither_kv_nor_d1() {
    for malformed in [
        "rk_live_",
        "rk_live_0123456789ABCDEF0123456789ABCDEF",
        "sk_live_0123456789abcdef0123456789abcdef",
    ] {
        let response = get(
            "acme",
            &unique_path("malformed"),
            &[("X-Api-Key", malformed)],
        );
        assert_eq!(response.status, 401);
        let line = log_line(response.header("X-Request-Id").unwrap());
        assert_eq!(
            (
                line["cache"].as_str(),
                line["kvReads"].as_u64(),
                line["d1Queries"].as_u64()
            ),
            (Some("skipped"), Some(0), Some(0)),
            "{line}"
        );
    }
}

fn revocation_takes_effect_on_the_next_request() {
    let tenant = TestTenant::new("revnow");
    let created = tenant.create_key(json!({"name": "soon revoked", "scopes": "read"}));
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        get(&tenant.name, &unique_path("before"), &[("X-Api-Key", key)]).status,
        200
    );
    tenant.revoke(created["id"].as_str().unwrap());
    let path = unique_path("after");
    assert_eq!(get(&tenant.name, &path, &[("X-Api-Key", key)]).status, 401);
    assert!(worker().origin.received(&path).is_empty());
}

fn a_revocation_racing_many_requests_leaves_the_key_rejected() {
    let tenant = TestTenant::new("race");
    let created = tenant.create_key(json!({"name": "raced", "scopes": "read"}));
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let name = tenant.name.clone();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (name, key) = (name.clone(), key.clone());
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| get(&name, &unique_path("race"), &[("X-Api-Key", &key)]).status)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    tenant.revoke(&id);
    for thread in workers {
        assert!(thread
            .join()
            .unwrap()
            .iter()
            .all(|s| *s == 200 || *s == 401));
    }
    // Fills scheduled by the racing requests have had time to land; none may resurrect the key.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        let path = unique_path("after-race");
        assert_eq!(get(&tenant.name, &path, &[("X-Api-Key", &key)]).status, 401);
        assert!(worker().origin.received(&path).is_empty());
    }
}

pub fn chrono_in(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(now_seconds() + seconds, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn wait_until_past(seconds: i64) {
    std::thread::sleep(Duration::from_millis(seconds as u64 * 1000 + 1100));
}

fn a_key_stops_working_when_it_expires() {
    let tenant = TestTenant::new("expiry");
    let created = tenant.create_key(json!({"name": "short-lived", "expiresAt": chrono_in(3)}));
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        get(&tenant.name, &unique_path("fresh"), &[("X-Api-Key", key)]).status,
        200
    );
    wait_until_past(3);
    assert_eq!(
        get(&tenant.name, &unique_path("stale"), &[("X-Api-Key", key)]).status,
        401
    );
    assert_eq!(
        tenant.key(created["id"].as_str().unwrap())["isActive"],
        false
    );
}

/// The gateway's fast path (`src/gate.rs`, driven by the JavaScript shell) serves the requests
/// without a key, with a malformed one or with one that the cache decides, in the front Worker
/// (lane `front`); the Rust handler in the whole Worker serves the rest, and serves these too when the test-only header
/// `x-test-handler` asks for it. The same request down both paths gets the same answer, the
/// same log line and, when forwarded, the same request at the origin.
fn the_fast_path_and_the_handler_answer_every_cached_decision_alike() {
    let tenant = TestTenant::new("lanes");
    let reader = tenant.create_key(json!({"name": "reader", "scopes": "read"}));
    let listed = tenant.create_key(json!({"name": "listed", "allowedIps": ["203.0.113.0/24"]}));
    let revoked = tenant.create_key(json!({"name": "revoked"}));
    tenant.revoke(revoked["id"].as_str().unwrap());
    let key = |created: &serde_json::Value| created["key"].as_str().unwrap().to_string();
    let (reader, listed, revoked) = (key(&reader), key(&listed), key(&revoked));
    // A key's first use reads D1 and fills the cache, which only the handler does.
    let warm_up = get(
        &tenant.name,
        &unique_path("lanes"),
        &[("X-Api-Key", &reader)],
    );
    assert_eq!(warm_up.status, 200);
    /// A request, and the status and the log line's cache outcome both paths must give it.
    struct Case<'a> {
        label: &'a str,
        method: &'a str,
        key: Option<&'a str>,
        status: u16,
        cache: Option<&'a str>,
    }
    let case = |label, method, key, status, cache| Case {
        label,
        method,
        key,
        status,
        cache,
    };
    let cases = [
        case("allowed", "GET", Some(&reader), 200, Some("hit")),
        case("out of scope", "POST", Some(&reader), 403, Some("hit")),
        case(
            "outside the allow-list",
            "GET",
            Some(&listed),
            403,
            Some("hit"),
        ),
        case("revoked", "GET", Some(&revoked), 401, Some("negative")),
        case(
            "malformed",
            "GET",
            Some("rk_live_not-a-key"),
            401,
            Some("skipped"),
        ),
        case("without a key", "GET", None, 200, None),
    ];
    // Whatever differs by nature between two requests: their ids, their timing, the usage
    // send that one of them happens to set off, the one header the test adds, and the Worker
    // that the runtime names in the origin's `cf-worker` (behind the front Worker, the handler
    // is in the whole Worker).
    let request_specific = [
        "x-request-id",
        "date",
        "x-rally-identity",
        "x-test-handler",
        "cf-worker",
    ];
    let kept = |headers: &[(String, String)]| {
        let mut kept: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .filter(|(n, _)| !request_specific.contains(&n.as_str()))
            .collect();
        kept.sort();
        kept
    };
    let line_without = |mut line: serde_json::Value| {
        for field in ["requestId", "path", "ms", "lane", "usageSend"] {
            line.as_object_mut().unwrap().remove(field);
        }
        line
    };
    for Case {
        label,
        method,
        key,
        status,
        cache,
    } in cases
    {
        let mut answers = Vec::new();
        for lane in ["front", "handler"] {
            let path = unique_path("lanes");
            let mut headers = vec![("CF-Connecting-IP", "198.51.100.7")];
            headers.extend(key.map(|key| ("X-Api-Key", key)));
            if lane == "handler" {
                headers.push(("x-test-handler", "1"));
            }
            let response = request(method, &tenant.name, &path, &headers, None);
            assert_eq!(
                response.status,
                status,
                "{label}, {lane}: {}",
                response.text()
            );
            let line = log_line(response.header("X-Request-Id").unwrap());
            assert_eq!(line["lane"], lane, "{label}: {line}");
            assert_eq!(line["cache"].as_str(), cache, "{label}, {lane}");
            let received = worker().origin.received(&path);
            assert_eq!(
                received.len(),
                usize::from(status == 200),
                "{label}, {lane}"
            );
            let at_origin = received
                .first()
                .map(|got| (got.method.clone(), kept(&got.headers)));
            answers.push((
                response.body.clone(),
                kept(&response.headers),
                line_without(line),
                at_origin,
            ));
        }
        assert_eq!(
            answers[0], answers[1],
            "{label}: the fast path, then the handler"
        );
    }
}
