//! Per-key IP allow-lists: a key with a list is admitted only from a `CF-Connecting-IP` inside
//! it, on the CRM's routes and on the management API alike; anything else is 403
//! `ip_not_allowed`, answered at the edge. Changes apply to the next request.

use crate::harness::*;
use crate::trials;
use serde_json::{json, Value};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("allowlist":
        a_key_with_a_list_is_admitted_only_from_inside_it_and_nothing_else_reaches_the_origin,
        the_list_is_checked_before_the_scope,
        narrowing_and_clearing_the_list_apply_to_the_next_request,
        an_admin_key_with_a_list_is_refused_on_the_management_api_from_outside_it,
    )
}

/// What a request with `key` from `client` ("" for no `CF-Connecting-IP`) gets on a fresh CRM
/// path, and how many requests the origin received on it.
fn from(tenant: &TestTenant, method: &str, key: &str, client: &str) -> (Response, usize) {
    let path = unique_path("allowlist");
    let response = request(
        method,
        &tenant.name,
        &path,
        &[("X-Api-Key", key), ("CF-Connecting-IP", client)],
        None,
    );
    (response, worker().origin.received(&path).len())
}

fn assert_ip_not_allowed(response: &Response, label: &str) {
    assert_eq!(
        (response.status, response.code()),
        (403, "ip_not_allowed".to_string()),
        "{label}: {}",
        response.text()
    );
    // Neither the list nor the address the edge saw.
    let text = response.text();
    for revealing in ["203.0.113", "2001:db8", "198.51.100", "/24", "/128"] {
        assert!(!text.contains(revealing), "{label}: {text}");
    }
}

fn a_key_with_a_list_is_admitted_only_from_inside_it_and_nothing_else_reaches_the_origin() {
    let tenant = TestTenant::new("allow");
    let created = tenant.create_key(json!({
        "name": "office",
        "scopes": "read",
        "allowedIps": ["203.0.113.0/24", "2001:DB8:0::1"],
    }));
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    assert_eq!(
        tenant.key(id)["allowedIps"],
        json!(["203.0.113.0/24", "2001:db8::1/128"])
    );
    for client in ["203.0.113.9", "203.0.113.0", "203.0.113.255", "2001:db8::1"] {
        let (response, received) = from(&tenant, "GET", key, client);
        assert_eq!(response.status, 200, "{client}: {}", response.text());
        assert_eq!(received, 1, "{client}");
    }
    for client in [
        "198.51.100.1",
        "203.0.114.0",
        "2001:db8::2",
        "not-an-address",
    ] {
        let (response, received) = from(&tenant, "GET", key, client);
        assert_ip_not_allowed(&response, client);
        assert_eq!(received, 0, "{client}: the origin got nothing");
        // The key was valid: the log names it, and the refusal is the allow-list's.
        let line = log_line(response.header("X-Request-Id").unwrap());
        assert_eq!(
            (line["keyId"].as_str(), line["outcome"].as_str()),
            (Some(id), Some("ip_not_allowed"))
        );
    }
    // With no CF-Connecting-IP sent. Cloudflare always sets one in production; locally the
    // runtime fills in the loopback address, so the case of none at all reaching the Worker is
    // the domain's unit test (cache_entry: admits_client(None)).
    let (response, received) = from(&tenant, "GET", key, "");
    assert_ip_not_allowed(&response, "no CF-Connecting-IP");
    assert_eq!(received, 0);
    // A key without a list is unaffected, whatever the address.
    let open = tenant.create_key(json!({"name": "anywhere"}));
    let (response, received) = from(
        &tenant,
        "GET",
        open["key"].as_str().unwrap(),
        "198.51.100.1",
    );
    assert_eq!((response.status, received), (200, 1), "{}", response.text());
}

fn the_list_is_checked_before_the_scope() {
    let tenant = TestTenant::new("allow-scope");
    let created = tenant.create_key(json!({
        "name": "reader", "scopes": "read", "allowedIps": ["203.0.113.0/24"],
    }));
    let key = created["key"].as_str().unwrap();
    let (outside, received) = from(&tenant, "POST", key, "198.51.100.1");
    assert_ip_not_allowed(&outside, "POST from outside");
    let (inside, received_inside) = from(&tenant, "POST", key, "203.0.113.9");
    assert_eq!(
        (inside.status, inside.code()),
        (403, "forbidden".to_string())
    );
    assert_eq!((received, received_inside), (0, 0));
}

fn narrowing_and_clearing_the_list_apply_to_the_next_request() {
    let tenant = TestTenant::new("allow-change");
    let created = tenant.create_key(json!({"name": "ETL", "allowedIps": ["203.0.113.0/24"]}));
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let patch = |body: Value| {
        let response = send_json(
            "PATCH",
            &tenant.name,
            &format!("/api/v1/api-keys/{id}"),
            &tenant.admin_headers(),
            &body,
        );
        assert_eq!(response.status, 200, "{body}: {}", response.text());
        response.json()
    };
    // The key is in use, its grant (list and all) in the cache, before the list changes.
    assert_eq!(from(&tenant, "GET", key, "203.0.113.9").0.status, 200);
    assert_eq!(from(&tenant, "GET", key, "203.0.113.7").0.status, 200);

    let narrowed = patch(json!({"allowedIps": ["203.0.113.7"]}));
    assert_eq!(narrowed["allowedIps"], json!(["203.0.113.7/32"]));
    let (refused, received) = from(&tenant, "GET", key, "203.0.113.9");
    assert_ip_not_allowed(&refused, "after narrowing");
    assert_eq!(received, 0);
    assert_eq!(from(&tenant, "GET", key, "203.0.113.7").0.status, 200);

    // Another change leaves the list as it is.
    assert_eq!(
        patch(json!({"name": "ETL 2"}))["allowedIps"],
        json!(["203.0.113.7/32"])
    );
    assert_ip_not_allowed(
        &from(&tenant, "GET", key, "203.0.113.9").0,
        "after a rename",
    );

    let cleared = patch(json!({"allowedIps": null}));
    assert_eq!(cleared["allowedIps"], Value::Null);
    assert_eq!(tenant.key(id)["allowedIps"], Value::Null);
    let (response, received) = from(&tenant, "GET", key, "198.51.100.1");
    assert_eq!((response.status, received), (200, 1), "{}", response.text());
}

fn an_admin_key_with_a_list_is_refused_on_the_management_api_from_outside_it() {
    let tenant = TestTenant::new("allow-admin");
    let admin = tenant.create_key(json!({
        "name": "provisioning", "scopes": "admin", "allowedIps": ["203.0.113.0/24"],
    }));
    let key = admin["key"].as_str().unwrap();
    let as_key = |client: &'static str| [("X-Api-Key", key), ("CF-Connecting-IP", client)];
    for client in ["198.51.100.1", ""] {
        let listed = get(&tenant.name, "/api/v1/api-keys", &as_key(client));
        assert_ip_not_allowed(&listed, "list from outside");
        let current = get(&tenant.name, "/api/v1/api-keys/current", &as_key(client));
        assert_ip_not_allowed(&current, "current from outside");
        let created = send_json(
            "POST",
            &tenant.name,
            "/api/v1/api-keys",
            &as_key(client),
            &json!({"name": "from outside"}),
        );
        assert_ip_not_allowed(&created, "create from outside");
    }
    assert_eq!(tenant.list().len(), 1, "nothing was created from outside");
    let listed = get(&tenant.name, "/api/v1/api-keys", &as_key("203.0.113.9"));
    assert_eq!(listed.status, 200, "{}", listed.text());
    let created = send_json(
        "POST",
        &tenant.name,
        "/api/v1/api-keys",
        &as_key("203.0.113.9"),
        &json!({"name": "from inside"}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(tenant.list().len(), 2);
}
