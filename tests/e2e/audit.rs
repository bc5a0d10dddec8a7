//! The audit log: every change to a key is recorded with who made it, from where and what
//! changed, in the same transaction as the change; read back newest first, paged, per tenant.

use crate::harness::*;
use crate::trials;
use rally_edge_keys::domain::time::parse_rfc3339;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Barrier;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("audit":
        every_change_to_a_key_is_recorded_newest_first_with_actor_address_and_changes,
        an_admin_key_is_recorded_as_the_actor_and_addresses_canonically_or_not_at_all,
        changes_that_change_nothing_record_nothing,
        racing_updates_each_record_the_value_they_replaced,
        another_tenant_sees_none_of_the_events_even_by_key_id,
        pages_of_two_walk_every_event_once_by_their_link_headers,
        bad_queries_get_their_exact_status_code_and_field,
        only_admins_read_the_audit_log,
        a_change_whose_event_cannot_be_written_is_not_made,
    )
}

const EVENT_FIELDS: [&str; 7] = ["id", "at", "action", "keyId", "actor", "actorIp", "details"];

/// The tenant's events (`query` after the `?`), as the admin reads them.
fn events(tenant: &TestTenant, query: &str) -> Vec<Value> {
    let response = get(
        &tenant.name,
        &format!("/api/v1/audit-events?{query}"),
        &tenant.admin_headers(),
    );
    assert_eq!(response.status, 200, "{query}: {}", response.text());
    response.json().as_array().unwrap().clone()
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// An admin request from `ip`, with a JSON body when there is one.
fn change(
    tenant: &TestTenant,
    method: &str,
    path: &str,
    ip: &str,
    body: Option<Value>,
) -> Response {
    let mut headers = vec![
        ("Authorization", tenant.admin.as_str()),
        ("CF-Connecting-IP", ip),
    ];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let body = body.map(|b| b.to_string().into_bytes());
    request(method, &tenant.name, path, &headers, body.as_deref())
}

fn every_change_to_a_key_is_recorded_newest_first_with_actor_address_and_changes() {
    let tenant = TestTenant::new("audit");
    let ip = "203.0.113.7";
    let created = change(
        &tenant,
        "POST",
        "/api/v1/api-keys",
        ip,
        Some(json!({"name": "ETL", "scopes": "read"})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/api-keys/{id}");
    let patched = change(
        &tenant,
        "PATCH",
        &path,
        ip,
        Some(json!({
            "name": "ETL nightly", "scopes": "read,write", "allowedIps": ["203.0.113.0/24"]
        })),
    );
    assert_eq!(patched.status, 200, "{}", patched.text());
    let rotated = change(
        &tenant,
        "POST",
        &format!("{path}/rotate"),
        ip,
        Some(json!({"gracePeriodSeconds": 60})),
    );
    assert_eq!(rotated.status, 201, "{}", rotated.text());
    let rotated = rotated.json();
    assert_eq!(change(&tenant, "DELETE", &path, ip, None).status, 204);

    let recorded = events(&tenant, "");
    assert_eq!(
        actions(&recorded),
        [
            "api_key.revoked",
            "api_key.rotated",
            "api_key.updated",
            "api_key.created"
        ]
    );
    let admin = format!("admin@{}.test", tenant.name);
    for event in &recorded {
        let fields: BTreeSet<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, EVENT_FIELDS.into_iter().collect(), "{event}");
        assert_eq!(
            (&event["keyId"], &event["actor"], &event["actorIp"]),
            (&json!(id), &json!(admin), &json!(ip)),
            "{event}"
        );
        assert!(event["at"].as_str().unwrap().ends_with('Z'), "{event}");
    }
    let times: Vec<i64> = recorded
        .iter()
        .map(|e| parse_rfc3339(e["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let ids: BTreeSet<&str> = recorded.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4);
    let details: Vec<&Value> = recorded.iter().map(|e| &e["details"]).collect();
    assert_eq!(
        details,
        [
            &json!({}),
            &json!({"gracePeriodSeconds": 60, "keyPrefix": rotated["keyPrefix"]}),
            &json!({
                "name": {"from": "ETL", "to": "ETL nightly"},
                "scopes": {"from": "read", "to": "read,write"},
                "allowedIps": {"from": null, "to": ["203.0.113.0/24"]}
            }),
            &json!({
                "name": "ETL",
                "scopes": "read",
                "expiresAt": null,
                "keyPrefix": created["keyPrefix"],
                "allowedIps": null
            }),
        ]
    );

    // The keyId filter gives the same four; another key's events are in the tenant's list only.
    let other = tenant.create_key(json!({"name": "other"}));
    assert_eq!(events(&tenant, &format!("keyId={id}")), recorded);
    let all = events(&tenant, "");
    assert_eq!(all.len(), 5);
    assert_eq!(
        (all[0]["action"].as_str(), &all[0]["keyId"]),
        (Some("api_key.created"), &other["id"])
    );
    // The action filter, alone and with the key's.
    let creations = events(&tenant, "action=api_key.created");
    assert_eq!(creations, [all[0].clone(), all[4].clone()]);
    assert_eq!(
        events(&tenant, &format!("action=api_key.rotated&keyId={id}")),
        [recorded[1].clone()]
    );
    assert!(events(&tenant, "action=api_key.leaked").is_empty());
}

fn an_admin_key_is_recorded_as_the_actor_and_addresses_canonically_or_not_at_all() {
    let tenant = TestTenant::new("audit-actor");
    let admin_key = tenant.create_key(json!({"name": "robot", "scopes": "admin"}));
    let key = admin_key["key"].as_str().unwrap();
    let created = request(
        "POST",
        &tenant.name,
        "/api/v1/api-keys",
        &[
            ("X-Api-Key", key),
            ("CF-Connecting-IP", "2001:DB8:0:0::1"),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"name": "made by a key"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    let renamed = request(
        "PATCH",
        &tenant.name,
        &format!("/api/v1/api-keys/{id}"),
        &[
            ("X-Api-Key", key),
            ("CF-Connecting-IP", "not an address"),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"name": "renamed by a key"}"#),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    let events = events(&tenant, &format!("keyId={id}"));
    let actor = format!("apikey:{}", admin_key["id"].as_str().unwrap());
    let who: Vec<(&Value, &Value)> = events
        .iter()
        .map(|e| (&e["actor"], &e["actorIp"]))
        .collect();
    assert_eq!(
        who,
        [
            (&json!(actor), &Value::Null),
            (&json!(actor), &json!("2001:db8::1"))
        ]
    );
}

fn changes_that_change_nothing_record_nothing() {
    let tenant = TestTenant::new("audit-noop");
    let id = tenant.create_key(json!({"name": "ETL", "scopes": "read,write"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/api-keys/{id}");
    let headers = tenant.admin_headers();
    let before = tenant.key(&id);
    let same = send_json(
        "PATCH",
        &tenant.name,
        &path,
        &headers,
        &json!({"name": "ETL", "scopes": "write, read"}),
    );
    assert_eq!(same.status, 200, "{}", same.text());
    assert_eq!(same.json(), before);
    let refused = send_json(
        "PATCH",
        &tenant.name,
        &path,
        &headers,
        &json!({"scopes": "root"}),
    );
    assert_eq!(refused.status, 400);
    let bad_create = send_json(
        "POST",
        &tenant.name,
        "/api/v1/api-keys",
        &headers,
        &json!({"name": ""}),
    );
    assert_eq!(bad_create.status, 400);
    for _ in 0..2 {
        assert_eq!(
            request("DELETE", &tenant.name, &path, &headers, None).status,
            204
        );
    }
    let on_revoked = [
        send_json(
            "PATCH",
            &tenant.name,
            &path,
            &headers,
            &json!({"name": "x"}),
        ),
        request(
            "POST",
            &tenant.name,
            &format!("{path}/rotate"),
            &headers,
            None,
        ),
    ];
    for response in on_revoked {
        assert_eq!(
            (response.status, response.code()),
            (409, "key_revoked".to_string())
        );
    }
    assert_eq!(
        actions(&events(&tenant, "")),
        ["api_key.revoked", "api_key.created"]
    );
}

/// Five PATCHes of one key at once. Each one that loses a race reads the key again, and five
/// attempts are enough for five racers, so every one succeeds; each event's `from` is the name
/// it replaced: no two share one.
fn racing_updates_each_record_the_value_they_replaced() {
    const RACERS: usize = 5;
    let tenant = TestTenant::new("audit-race");
    let id = tenant.create_key(json!({"name": "start"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/api-keys/{id}");
    let barrier = Barrier::new(RACERS);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let (tenant, path, barrier) = (&tenant, &path, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    send_json(
                        "PATCH",
                        &tenant.name,
                        path,
                        &tenant.admin_headers(),
                        &json!({"name": format!("racer {i}")}),
                    )
                    .status
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(statuses, [200; RACERS]);
    let updates: Vec<(String, String)> = events(&tenant, &format!("keyId={id}"))
        .iter()
        .filter(|e| e["action"] == "api_key.updated")
        .map(|e| {
            let name = &e["details"]["name"];
            (
                name["from"].as_str().unwrap().to_string(),
                name["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(updates.len(), RACERS, "{updates:?}");
    // Followed from "start", the changes form one chain through every racer's name, ending at
    // the key's name.
    let mut name = "start".to_string();
    for _ in 0..RACERS {
        let next = updates
            .iter()
            .find(|(from, _)| *from == name)
            .unwrap_or_else(|| panic!("no update from {name:?}: {updates:?}"));
        name = next.1.clone();
    }
    assert_eq!(tenant.key(&id)["name"], name.as_str(), "{updates:?}");
    let froms: BTreeSet<&String> = updates.iter().map(|(from, _)| from).collect();
    assert_eq!(froms.len(), RACERS, "{updates:?}");
}

fn another_tenant_sees_none_of_the_events_even_by_key_id() {
    let tenant = TestTenant::new("audit-own");
    let id = tenant.create_key(json!({"name": "ours"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    tenant.revoke(&id);
    assert_eq!(events(&tenant, "").len(), 2);
    let other = TestTenant::new("audit-other");
    other.create_key(json!({"name": "theirs"}));
    let theirs = events(&other, "");
    assert_eq!(actions(&theirs), ["api_key.created"]);
    assert_ne!(theirs[0]["keyId"], json!(id));
    assert!(events(&other, &format!("keyId={id}")).is_empty());
}

/// The `Link` header's next URL, as a path and query for the same Worker.
fn next_page(response: &Response) -> Option<String> {
    let link = response.header("Link")?;
    assert!(link.ends_with(">; rel=\"next\""), "{link}");
    let url = &link[1..link.find('>').unwrap()];
    Some(url[url.find("/api/").unwrap()..].to_string())
}

fn pages_of_two_walk_every_event_once_by_their_link_headers() {
    let tenant = TestTenant::new("audit-pages");
    let created = tenant.create_key(json!({"name": "paged"}));
    let id = created["id"].as_str().unwrap();
    let headers = tenant.admin_headers();
    let path = format!("/api/v1/api-keys/{id}");
    let patched = send_json(
        "PATCH",
        &tenant.name,
        &path,
        &headers,
        &json!({"name": "p"}),
    );
    assert_eq!(patched.status, 200);
    let rotated = request(
        "POST",
        &tenant.name,
        &format!("{path}/rotate"),
        &headers,
        None,
    );
    assert_eq!(rotated.status, 201);
    tenant.revoke(id);
    let all = events(&tenant, "");
    assert_eq!(all.len(), 4);

    for (first, pages) in [
        ("/api/v1/audit-events?limit=2".to_string(), 2),
        (format!("/api/v1/audit-events?keyId={id}&limit=3"), 2),
        (format!("/api/v1/audit-events?limit=1&keyId={id}"), 4),
    ] {
        let (mut walked, mut count, mut next) = (Vec::new(), 0, Some(first.clone()));
        while let Some(path) = next {
            let response = get(&tenant.name, &path, &headers);
            assert_eq!(response.status, 200, "{path}: {}", response.text());
            walked.extend(response.json().as_array().unwrap().clone());
            count += 1;
            next = next_page(&response);
            if let Some(next) = &next {
                let limit = &first[first.find("limit=").unwrap()..][..7];
                assert!(next.contains(limit), "{next}");
                assert_eq!(next.contains(id), first.contains(id), "{next}");
            }
        }
        assert_eq!((count, &walked), (pages, &all), "{first}");
    }
}

fn bad_queries_get_their_exact_status_code_and_field() {
    let tenant = TestTenant::new("audit-bad");
    for _ in 0..2 {
        tenant.create_key(json!({"name": "k"}));
    }
    let cursor_of = |path: &str| {
        let response = get(&tenant.name, path, &tenant.admin_headers());
        let next = next_page(&response).unwrap_or_else(|| panic!("no Link for {path}"));
        next[next.find("cursor=").unwrap() + 7..].to_string()
    };
    let cursor = cursor_of("/api/v1/audit-events?limit=1");
    let key_list_cursor = cursor_of("/api/v1/api-keys?limit=1");
    let mut tampered = cursor.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(events(&tenant, &format!("cursor={cursor}")).len(), 1);
    let uppercase_id = "0B6F8D2E-5C1A-4E3B-9A7D-2F4C6E8A0B1C";
    assert!(events(&tenant, &format!("keyId={uppercase_id}")).is_empty());

    for (query, status, code, field) in [
        ("limit=0", 400, "validation_error", "limit"),
        ("limit=1001", 400, "validation_error", "limit"),
        ("limit=abc", 400, "validation_error", "limit"),
        ("limit=", 400, "validation_error", "limit"),
        ("limit=5&limit=0", 400, "validation_error", "limit"),
        (
            &format!("cursor={tampered}"),
            400,
            "invalid_cursor",
            "cursor",
        ),
        (
            &format!("cursor={key_list_cursor}"),
            400,
            "invalid_cursor",
            "cursor",
        ),
        ("cursor=AAAA", 400, "invalid_cursor", "cursor"),
        ("cursor=%%%", 400, "invalid_cursor", "cursor"),
        ("keyId=not-a-uuid", 400, "validation_error", "keyId"),
        ("action=", 400, "validation_error", "action"),
        ("action=api_key.deleted", 400, "validation_error", "action"),
        ("action=API_KEY.CREATED", 400, "validation_error", "action"),
        ("action=created", 400, "validation_error", "action"),
        ("keyId=", 400, "validation_error", "keyId"),
        ("keyId=1%27%20OR%201=1", 400, "validation_error", "keyId"),
        (
            "keyId=%7B0b6f8d2e-5c1a-4e3b-9a7d-2f4c6e8a0b1c%7D",
            400,
            "validation_error",
            "keyId",
        ),
        (
            "keyId=0b6f8d2e5c1a4e3b9a7d2f4c6e8a0b1c",
            400,
            "validation_error",
            "keyId",
        ),
    ] {
        let response = get(
            &tenant.name,
            &format!("/api/v1/audit-events?{query}"),
            &tenant.admin_headers(),
        );
        assert_eq!(
            (response.status, response.code()),
            (status, code.to_string()),
            "{query}: {}",
            response.text()
        );
        assert_eq!(response.json()["error"]["field"], field, "{query}");
    }
    // A cursor is bound to its tenant.
    let other = TestTenant::new("audit-bad-other");
    let foreign = get(
        &other.name,
        &format!("/api/v1/audit-events?cursor={cursor}"),
        &other.admin_headers(),
    );
    assert_eq!(
        (foreign.status, foreign.code()),
        (400, "invalid_cursor".to_string())
    );
}

fn only_admins_read_the_audit_log() {
    let tenant = TestTenant::new("audit-access");
    let read_key = tenant.create_key(json!({"name": "reader", "scopes": "read,write"}));
    let admin_key = tenant.create_key(json!({"name": "admin", "scopes": "admin"}));
    let member = format!("Bearer {}", session_token(&tenant.name, "member"));
    let path = "/api/v1/audit-events";
    for (label, headers, status, code) in [
        (
            "member session",
            vec![("Authorization", member.as_str())],
            403,
            "forbidden",
        ),
        (
            "read,write key",
            vec![("X-Api-Key", read_key["key"].as_str().unwrap())],
            403,
            "forbidden",
        ),
        ("no credential", vec![], 401, "unauthorized"),
    ] {
        let response = get(&tenant.name, path, &headers);
        assert_eq!(
            (response.status, response.code()),
            (status, code.to_string()),
            "{label}"
        );
    }
    let by_key = get(
        &tenant.name,
        path,
        &[("X-Api-Key", admin_key["key"].as_str().unwrap())],
    );
    assert_eq!(by_key.status, 200, "{}", by_key.text());
    assert_eq!(by_key.json().as_array().unwrap().len(), 2);
    for method in ["POST", "DELETE", "PUT", "PATCH"] {
        let response = request(method, &tenant.name, path, &tenant.admin_headers(), None);
        assert_eq!(
            (response.status, response.header("Allow")),
            (405, Some("GET")),
            "{method}"
        );
    }
}

const NO_AUDIT_TENANT: &str = "no-audit";
/// A key written straight into the D1 of the instance without an audit_events table.
const SEEDED_KEY: &str = "rk_live_a0d1a0d1a0d1a0d1a0d1a0d1a0d1a0d1";
const SEEDED_KEY_ID: &str = "4f1c2d3e-5a6b-4c7d-8e9f-a0b1c2d3e4f5";

/// Before the "no-audit-table" instance starts (harness::INSTANCES): the keys' tables as the
/// migrations before the audit log's make them, and SEEDED_KEY in them.
pub fn prepare_d1_without_audit_table(instance: &Instance) {
    for migration in ["0001_initial.sql", "0002_allowed_ips.sql"] {
        instance.wrangler(
            &[
                "d1",
                "execute",
                "DB",
                "--local",
                "--file",
                &format!("migrations/{migration}"),
            ],
            "the migrations before the audit log's",
        );
    }
    let seed = format!(
        "INSERT INTO api_keys (id, tenant, key_prefix, name, scopes, created_at, created_by) \
         VALUES ('{SEEDED_KEY_ID}', '{NO_AUDIT_TENANT}', '{}', 'seeded', 'read,write', {}, 'seed');
         INSERT INTO api_key_secrets (key_hash, key_id, tenant, valid_until) \
         VALUES ('{}', '{SEEDED_KEY_ID}', '{NO_AUDIT_TENANT}', NULL);",
        &SEEDED_KEY[..12],
        now_seconds() * 1000,
        sha256_hex(SEEDED_KEY),
    );
    let file = instance.persist.with_extension("seed.sql");
    std::fs::write(&file, seed).unwrap();
    instance.wrangler(
        &[
            "d1",
            "execute",
            "DB",
            "--local",
            "--file",
            file.to_str().unwrap(),
        ],
        "seed a key",
    );
}

/// Every change's batch fails at its event there: the change must not be made either.
fn a_change_whose_event_cannot_be_written_is_not_made() {
    remember_secret(SEEDED_KEY);
    let port = instance("no-audit-table").port;
    let admin = format!("Bearer {}", session_token(NO_AUDIT_TENANT, "admin"));
    let call = |method: &str, path: &str, body: Option<Value>| {
        let mut headers = vec![("Authorization", admin.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let body = body.map(|b| b.to_string().into_bytes());
        send(
            port,
            method,
            NO_AUDIT_TENANT,
            path,
            &headers,
            body.as_deref(),
        )
    };
    let path = format!("/api/v1/api-keys/{SEEDED_KEY_ID}");
    let state = || {
        let key = call("GET", &path, None);
        assert_eq!(key.status, 200, "{}", key.text());
        let key = key.json();
        (
            key["name"].clone(),
            key["scopes"].clone(),
            key["keyPrefix"].clone(),
            key["isActive"].clone(),
        )
    };
    let before = state();
    assert_eq!(before.3, true);
    let attempts = [
        (
            "POST",
            "/api/v1/api-keys".to_string(),
            Some(json!({"name": "new"})),
        ),
        (
            "PATCH",
            path.clone(),
            Some(json!({"name": "renamed", "scopes": "read"})),
        ),
        (
            "POST",
            format!("{path}/rotate"),
            Some(json!({"gracePeriodSeconds": 60})),
        ),
        ("DELETE", path.clone(), None),
    ];
    for (method, target, body) in attempts {
        let response = call(method, &target, body);
        assert_eq!(
            (response.status, response.code()),
            (503, "service_unavailable".to_string()),
            "{method} {target}: {}",
            response.text()
        );
        assert_eq!(state(), before, "after {method} {target}");
    }
    let list = call("GET", "/api/v1/api-keys", None);
    assert_eq!(list.json().as_array().unwrap().len(), 1, "{}", list.text());
    // Neither revoked nor replaced: the key still works.
    let forwarded = send(
        port,
        "GET",
        NO_AUDIT_TENANT,
        &unique_path("no-audit"),
        &[("X-Api-Key", SEEDED_KEY)],
        None,
    );
    assert_eq!(forwarded.status, 200, "{}", forwarded.text());
}
