//! Bad input is part of the contract: each kind gets its exact status and error code, and a
//! check that nothing was stored or changed.

use crate::harness::*;
use crate::trials;
use serde_json::json;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("bad_input":
        create_refuses_each_bad_body_and_stores_nothing,
        patch_refuses_mass_assignment_and_bad_values_and_changes_nothing,
        rotate_refuses_a_bad_grace_period_and_changes_nothing,
        list_refuses_bad_limits_and_tampered_cursors,
        wrong_methods_get_405_with_allow,
        hosts_other_than_a_tenant_subdomain_are_refused,
        malformed_and_unknown_ids_are_not_found,
    )
}

struct Case {
    label: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn case(
    label: &'static str,
    body: &[u8],
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        label,
        content_type: Some("application/json"),
        body: body.to_vec(),
        status,
        code,
        field,
    }
}

/// One row per kind of bad allow-list, each refused on the field `allowedIps`; `body` makes
/// the request body around the list (with a name, which must not be stored or changed either).
fn allow_list_cases(body: impl Fn(&str) -> String) -> Vec<Case> {
    let fifty_one: Vec<String> = (0..51).map(|i| format!("\"10.0.0.{i}\"")).collect();
    let fifty_one = format!("[{}]", fifty_one.join(","));
    [
        (
            "allowedIps: garbage",
            r#"["203.0.113.0/24", "not an address"]"#,
        ),
        ("allowedIps: host bits set", r#"["203.0.113.9/24"]"#),
        ("allowedIps: IPv4-mapped IPv6", r#"["::ffff:203.0.113.9"]"#),
        ("allowedIps: 51 entries", fifty_one.as_str()),
        ("allowedIps: empty array", "[]"),
        ("allowedIps: a string, not an array", r#""203.0.113.0/24""#),
        ("allowedIps: IPv4 prefix over 32", r#"["203.0.113.0/33"]"#),
        ("allowedIps: IPv6 prefix over 128", r#"["2001:db8::/129"]"#),
        (
            "allowedIps: an entry not a string",
            r#"["203.0.113.0/24", 24]"#,
        ),
    ]
    .into_iter()
    .map(|(label, list)| Case {
        body: body(list).into_bytes(),
        ..case(label, b"", 400, "validation_error", Some("allowedIps"))
    })
    .collect()
}

fn check(tenant: &TestTenant, method: &str, path: &str, cases: Vec<Case>) {
    for c in cases {
        let mut headers = vec![("Authorization", tenant.admin.as_str())];
        if let Some(content_type) = c.content_type {
            headers.push(("Content-Type", content_type));
        }
        let response = request(method, &tenant.name, path, &headers, Some(&c.body));
        assert_eq!(
            response.status,
            c.status,
            "{}: {}",
            c.label,
            response.text()
        );
        let body = response.json();
        assert_eq!(body["error"]["code"], c.code, "{}", c.label);
        assert_eq!(body["error"]["field"].as_str(), c.field, "{}", c.label);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            c.label
        );
    }
}

fn create_refuses_each_bad_body_and_stores_nothing() {
    let tenant = TestTenant::new("badcreate");
    let overlong = format!(r#"{{"name": "{}"}}"#, "a".repeat(101));
    let oversized = format!(r#"{{"name": "{}"}}"#, "a".repeat(17 * 1024));
    let mut cases = vec![
        case("missing name", b"{}", 400, "validation_error", Some("name")),
        case(
            "blank name",
            br#"{"name": "   "}"#,
            400,
            "validation_error",
            Some("name"),
        ),
        case(
            "overlong name",
            overlong.as_bytes(),
            400,
            "validation_error",
            Some("name"),
        ),
        case(
            "control character in name",
            b"{\"name\": \"a\\u0000b\"}",
            400,
            "validation_error",
            Some("name"),
        ),
        case(
            "name not a string",
            br#"{"name": ["x"]}"#,
            400,
            "validation_error",
            Some("name"),
        ),
        case(
            "unknown scope",
            br#"{"name": "x", "scopes": "read,superuser"}"#,
            400,
            "validation_error",
            Some("scopes"),
        ),
        case(
            "empty scopes",
            br#"{"name": "x", "scopes": ""}"#,
            400,
            "validation_error",
            Some("scopes"),
        ),
        case(
            "scopes not a string",
            br#"{"name": "x", "scopes": ["read"]}"#,
            400,
            "validation_error",
            Some("scopes"),
        ),
        case(
            "past expiresAt",
            br#"{"name": "x", "expiresAt": "2020-01-01T00:00:00Z"}"#,
            400,
            "validation_error",
            Some("expiresAt"),
        ),
        case(
            "unparseable expiresAt",
            br#"{"name": "x", "expiresAt": "31/12/2099"}"#,
            400,
            "validation_error",
            Some("expiresAt"),
        ),
        case(
            "unknown field",
            br#"{"name": "x", "isActive": false}"#,
            400,
            "unknown_field",
            Some("isActive"),
        ),
        case(
            "key is not assignable",
            br#"{"name": "x", "key": "rk_live_00000000000000000000000000000000"}"#,
            400,
            "unknown_field",
            Some("key"),
        ),
        case(
            "truncated JSON",
            br#"{"name": "x""#,
            400,
            "invalid_json",
            None,
        ),
        case(
            "a JSON array",
            br#"[{"name": "x"}]"#,
            400,
            "invalid_json",
            None,
        ),
        case("null", b"null", 400, "invalid_json", None),
        case("empty body", b"", 400, "invalid_json", None),
        case(
            "invalid UTF-8",
            b"{\"name\": \"\xc3\x28\"}",
            400,
            "invalid_json",
            None,
        ),
        case(
            "oversized body",
            oversized.as_bytes(),
            413,
            "payload_too_large",
            None,
        ),
    ];
    cases.push(Case {
        content_type: Some("text/plain"),
        ..case(
            "wrong content type",
            br#"{"name": "x"}"#,
            415,
            "unsupported_media_type",
            None,
        )
    });
    cases.push(Case {
        content_type: None,
        ..case(
            "no content type",
            br#"{"name": "x"}"#,
            415,
            "unsupported_media_type",
            None,
        )
    });
    cases.extend(allow_list_cases(|list| {
        format!(r#"{{"name": "x", "allowedIps": {list}}}"#)
    }));
    check(&tenant, "POST", "/api/v1/api-keys", cases);
    assert!(tenant.list().is_empty(), "nothing was stored");
}

fn patch_refuses_mass_assignment_and_bad_values_and_changes_nothing() {
    let tenant = TestTenant::new("badpatch");
    let created = tenant
        .create_key(json!({"name": "ETL", "scopes": "read", "allowedIps": ["198.51.100.0/24"]}));
    let id = created["id"].as_str().unwrap();
    let before = tenant.key(id);
    let mut cases = vec![
        case(
            "isActive",
            br#"{"isActive": false}"#,
            400,
            "unknown_field",
            Some("isActive"),
        ),
        case(
            "key",
            br#"{"name": "x", "key": "rk_live_00000000000000000000000000000000"}"#,
            400,
            "unknown_field",
            Some("key"),
        ),
        case(
            "expiresAt",
            br#"{"expiresAt": null}"#,
            400,
            "unknown_field",
            Some("expiresAt"),
        ),
        case("empty change", b"{}", 400, "validation_error", None),
        case(
            "blank name",
            br#"{"name": ""}"#,
            400,
            "validation_error",
            Some("name"),
        ),
        case(
            "unknown scope",
            br#"{"scopes": "root"}"#,
            400,
            "validation_error",
            Some("scopes"),
        ),
        case("truncated JSON", b"{", 400, "invalid_json", None),
    ];
    cases.extend(allow_list_cases(|list| {
        format!(r#"{{"name": "renamed", "allowedIps": {list}}}"#)
    }));
    check(&tenant, "PATCH", &format!("/api/v1/api-keys/{id}"), cases);
    assert_eq!(tenant.key(id), before, "nothing changed");
}

fn rotate_refuses_a_bad_grace_period_and_changes_nothing() {
    let tenant = TestTenant::new("badrotate");
    let created = tenant.create_key(json!({"name": "ETL"}));
    let id = created["id"].as_str().unwrap();
    let cases = vec![
        case(
            "too long",
            br#"{"gracePeriodSeconds": 604801}"#,
            400,
            "validation_error",
            Some("gracePeriodSeconds"),
        ),
        case(
            "negative",
            br#"{"gracePeriodSeconds": -5}"#,
            400,
            "validation_error",
            Some("gracePeriodSeconds"),
        ),
        case(
            "a string",
            br#"{"gracePeriodSeconds": "60"}"#,
            400,
            "validation_error",
            Some("gracePeriodSeconds"),
        ),
        case(
            "unknown field",
            br#"{"grace": 60}"#,
            400,
            "unknown_field",
            Some("grace"),
        ),
    ];
    check(
        &tenant,
        "POST",
        &format!("/api/v1/api-keys/{id}/rotate"),
        cases,
    );
    assert_eq!(tenant.key(id)["keyPrefix"], created["keyPrefix"]);
    assert_eq!(
        get(
            &tenant.name,
            &unique_path("rotate"),
            &[("X-Api-Key", created["key"].as_str().unwrap())]
        )
        .status,
        200
    );
}

fn list_refuses_bad_limits_and_tampered_cursors() {
    let tenant = TestTenant::new("badlist");
    for _ in 0..3 {
        tenant.create_key(json!({"name": "k"}));
    }
    let first = get(
        &tenant.name,
        "/api/v1/api-keys?limit=1",
        &tenant.admin_headers(),
    );
    let link = first.header("Link").unwrap().to_string();
    let cursor = link[link.find("cursor=").unwrap() + 7..link.find('>').unwrap()].to_string();
    let mut tampered = cursor.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other = TestTenant::new("badlist-other");
    for (query, status, code, field) in [
        ("limit=0", 400, "validation_error", "limit"),
        ("limit=1001", 400, "validation_error", "limit"),
        ("limit=ten", 400, "validation_error", "limit"),
        ("cursor=%%%", 400, "invalid_cursor", "cursor"),
        ("cursor=AAAA", 400, "invalid_cursor", "cursor"),
        (
            &format!("cursor={tampered}"),
            400,
            "invalid_cursor",
            "cursor",
        ),
    ] {
        let response = get(
            &tenant.name,
            &format!("/api/v1/api-keys?{query}"),
            &tenant.admin_headers(),
        );
        assert_eq!(
            (response.status, response.code()),
            (status, code.to_string()),
            "{query}"
        );
        assert_eq!(response.json()["error"]["field"], field);
    }
    // A cursor is bound to its tenant.
    let foreign = get(
        &other.name,
        &format!("/api/v1/api-keys?cursor={cursor}"),
        &other.admin_headers(),
    );
    assert_eq!(
        (foreign.status, foreign.code()),
        (400, "invalid_cursor".to_string())
    );
}

fn wrong_methods_get_405_with_allow() {
    let tenant = TestTenant::new("methods");
    let id = tenant.create_key(json!({"name": "k"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path, allow) in [
        ("PUT", "/api/v1/api-keys".to_string(), "GET, POST"),
        (
            "POST",
            format!("/api/v1/api-keys/{id}"),
            "GET, PATCH, DELETE",
        ),
        ("GET", format!("/api/v1/api-keys/{id}/rotate"), "POST"),
        ("DELETE", "/api/v1/api-keys/current".to_string(), "GET"),
        ("POST", "/healthz".to_string(), "GET, HEAD"),
    ] {
        let response = request(method, &tenant.name, &path, &tenant.admin_headers(), None);
        assert_eq!(
            (response.status, response.code()),
            (405, "method_not_allowed".to_string()),
            "{method} {path}"
        );
        assert_eq!(response.header("Allow"), Some(allow), "{method} {path}");
    }
}

fn hosts_other_than_a_tenant_subdomain_are_refused() {
    let port = worker().port;
    let tenant = TestTenant::new("hosts");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "evil.example.com".to_string(),
        format!("-bad.localhost:{port}"),
        format!("a.b.localhost:{port}"),
        "rallycrm.io".to_string(),
        format!("{}.localhost:{port}", "x".repeat(64)),
    ] {
        let response = request(
            "POST",
            &host,
            "/api/v1/api-keys",
            &[
                ("Authorization", tenant.admin.as_str()),
                ("Content-Type", "application/json"),
            ],
            Some(br#"{"name": "x"}"#),
        );
        assert_eq!(
            (response.status, response.code()),
            (400, "invalid_host".to_string()),
            "{host}"
        );
        assert_eq!(
            log_line(response.header("X-Request-Id").unwrap())["d1Queries"],
            0,
            "{host}"
        );
    }
    let production_style = get(
        &format!("{}.rallycrm.io", tenant.name),
        "/api/v1/api-keys",
        &tenant.admin_headers(),
    );
    assert_eq!(production_style.status, 200, "{}", production_style.text());
}

fn malformed_and_unknown_ids_are_not_found() {
    let tenant = TestTenant::new("ids");
    for path in [
        "/api/v1/api-keys/not-a-uuid",
        "/api/v1/api-keys/00000000-0000-4000-8000-000000000000",
        "/api/v1/api-keys/1%27%20OR%201=1",
        "/api/v1/api-keys/00000000-0000-4000-8000-000000000000/rotate",
        "/api/v1/api-keys/x/y/z",
    ] {
        let method = if path.ends_with("rotate") {
            "POST"
        } else {
            "GET"
        };
        let response = request(method, &tenant.name, path, &tenant.admin_headers(), None);
        assert_eq!(
            (response.status, response.code()),
            (404, "not_found".to_string()),
            "{path}"
        );
    }
}
