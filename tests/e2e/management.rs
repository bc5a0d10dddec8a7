//! The management API's success paths, field by field.

use crate::harness::*;
use crate::trials;
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("management":
        create_reveals_the_key_once_with_exactly_the_documented_fields,
        get_and_list_never_show_the_key_and_list_is_newest_first,
        patch_changes_name_and_scopes_only,
        delete_revokes_and_repeating_it_is_harmless,
        rotate_gives_a_new_secret_for_the_same_id,
        rotation_with_grace_keeps_the_old_secret_and_revocation_ends_both,
        current_describes_the_calling_key,
        an_admin_key_can_manage_keys_and_is_recorded_as_creator,
        pagination_walks_every_key_once_with_link_headers,
        healthz_answers,
    )
}

fn field_names(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const RESPONSE_FIELDS: [&str; 10] = [
    "id",
    "keyPrefix",
    "name",
    "scopes",
    "expiresAt",
    "lastUsedAt",
    "isActive",
    "createdAt",
    "createdBy",
    "allowedIps",
];

fn create_reveals_the_key_once_with_exactly_the_documented_fields() {
    let tenant = TestTenant::new("create");
    let response = send_json(
        "POST",
        &tenant.name,
        "/api/v1/api-keys",
        &tenant.admin_headers(),
        &json!({"name": "  Zapier  ", "scopes": "write, read,write", "expiresAt": "2099-01-01T00:00:00+01:00"}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("Cache-Control"), Some("no-store"));
    assert_eq!(response.header("X-Content-Type-Options"), Some("nosniff"));
    let created = response.json();
    assert_eq!(
        field_names(&created),
        names(&[
            "id",
            "key",
            "keyPrefix",
            "name",
            "scopes",
            "expiresAt",
            "createdAt"
        ])
    );
    let key = created["key"].as_str().unwrap();
    assert!(
        key.starts_with("rk_live_")
            && key.len() == 40
            && key[8..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(created["keyPrefix"], key[..12]);
    assert_eq!(created["name"], "Zapier");
    assert_eq!(created["scopes"], "read,write");
    assert_eq!(created["expiresAt"], "2098-12-31T23:00:00Z");
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created["id"].as_str().unwrap().len(), 36);

    let shown = tenant.key(created["id"].as_str().unwrap());
    assert_eq!(field_names(&shown), names(&RESPONSE_FIELDS));
    assert_eq!(shown["createdBy"], format!("admin@{}.test", tenant.name));
    assert_eq!(shown["isActive"], true);
    assert_eq!(shown["lastUsedAt"], Value::Null);
    assert_eq!(shown["allowedIps"], Value::Null);
    assert!(!shown.to_string().contains(key) && !shown.to_string().contains(&sha256_hex(key)));
}

fn get_and_list_never_show_the_key_and_list_is_newest_first() {
    let tenant = TestTenant::new("list");
    let first = tenant.create_key(json!({"name": "first"}));
    let second = tenant.create_key(json!({"name": "second", "scopes": "admin"}));
    let list = tenant.list();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], second["id"]);
    assert_eq!(list[1]["id"], first["id"]);
    assert_eq!(list[1]["scopes"], "read");
    assert_eq!(list[1]["expiresAt"], Value::Null);
    for item in &list {
        assert_eq!(field_names(item), names(&RESPONSE_FIELDS));
    }
    let text = serde_json::to_string(&list).unwrap();
    for created in [&first, &second] {
        let key = created["key"].as_str().unwrap();
        assert!(!text.contains(key) && !text.contains(&sha256_hex(key)));
    }
}

fn patch_changes_name_and_scopes_only() {
    let tenant = TestTenant::new("patch");
    let created = tenant.create_key(json!({"name": "ETL", "scopes": "read"}));
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/api-keys/{id}");
    let response = send_json(
        "PATCH",
        &tenant.name,
        &path,
        &tenant.admin_headers(),
        &json!({"name": "ETL nightly", "scopes": "admin,write"}),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let patched = response.json();
    assert_eq!(
        (patched["name"].as_str(), patched["scopes"].as_str()),
        (Some("ETL nightly"), Some("write,admin"))
    );
    assert_eq!(patched["keyPrefix"], created["keyPrefix"]);
    assert_eq!(patched["createdAt"], created["createdAt"]);
    let only_name = send_json(
        "PATCH",
        &tenant.name,
        &path,
        &tenant.admin_headers(),
        &json!({"name": "renamed"}),
    );
    assert_eq!(only_name.json()["scopes"], "write,admin");
}

fn delete_revokes_and_repeating_it_is_harmless() {
    let tenant = TestTenant::new("revoke");
    let created = tenant.create_key(json!({"name": "old"}));
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/api-keys/{id}");
    for _ in 0..2 {
        let response = request("DELETE", &tenant.name, &path, &tenant.admin_headers(), None);
        assert_eq!(response.status, 204, "{}", response.text());
        assert!(response.body.is_empty());
    }
    let listed = tenant.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["isActive"], false);
    let patch = send_json(
        "PATCH",
        &tenant.name,
        &path,
        &tenant.admin_headers(),
        &json!({"name": "x"}),
    );
    assert_eq!(
        (patch.status, patch.code()),
        (409, "key_revoked".to_string())
    );
    let rotate = request(
        "POST",
        &tenant.name,
        &format!("{path}/rotate"),
        &tenant.admin_headers(),
        None,
    );
    assert_eq!(
        (rotate.status, rotate.code()),
        (409, "key_revoked".to_string())
    );
    assert_eq!(tenant.key(id)["name"], "old");
}

fn rotate_gives_a_new_secret_for_the_same_id() {
    let tenant = TestTenant::new("rotate");
    let created = tenant.create_key(json!({"name": "Zapier", "scopes": "read"}));
    let old_key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let response = request(
        "POST",
        &tenant.name,
        &format!("/api/v1/api-keys/{id}/rotate"),
        &tenant.admin_headers(),
        None,
    );
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("Cache-Control"), Some("no-store"));
    let rotated = response.json();
    let new_key = rotated["key"].as_str().unwrap();
    assert_eq!(rotated["id"], created["id"]);
    assert_ne!(new_key, old_key);
    assert_eq!(rotated["keyPrefix"], new_key[..12]);
    assert_eq!(rotated["createdAt"], created["createdAt"]);
    assert_eq!(tenant.key(id)["keyPrefix"], new_key[..12]);
    let path = unique_path("rotate");
    assert_eq!(
        get(&tenant.name, &path, &[("X-Api-Key", old_key)]).status,
        401
    );
    assert_eq!(
        get(&tenant.name, &path, &[("X-Api-Key", new_key)]).status,
        200
    );
}

fn rotation_with_grace_keeps_the_old_secret_and_revocation_ends_both() {
    let tenant = TestTenant::new("grace");
    let created = tenant.create_key(json!({"name": "ETL"}));
    let old_key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let response = send_json(
        "POST",
        &tenant.name,
        &format!("/api/v1/api-keys/{id}/rotate"),
        &tenant.admin_headers(),
        &json!({"gracePeriodSeconds": 3600}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    let new_key = response.json()["key"].as_str().unwrap().to_string();
    let path = unique_path("grace");
    assert_eq!(
        get(&tenant.name, &path, &[("X-Api-Key", old_key)]).status,
        200
    );
    assert_eq!(
        get(&tenant.name, &path, &[("X-Api-Key", &new_key)]).status,
        200
    );
    tenant.revoke(id);
    assert_eq!(
        get(&tenant.name, &path, &[("X-Api-Key", old_key)]).status,
        401
    );
    assert_eq!(
        get(&tenant.name, &path, &[("X-Api-Key", &new_key)]).status,
        401
    );
}

fn current_describes_the_calling_key() {
    let tenant = TestTenant::new("current");
    let created = tenant.create_key(json!({"name": "Zapier", "scopes": "read"}));
    let response = get(
        &tenant.name,
        "/api/v1/api-keys/current",
        &[("X-Api-Key", created["key"].as_str().unwrap())],
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let current = response.json();
    assert_eq!(field_names(&current), names(&RESPONSE_FIELDS));
    assert_eq!(
        (&current["id"], &current["name"]),
        (&created["id"], &created["name"])
    );
    let with_session = get(
        &tenant.name,
        "/api/v1/api-keys/current",
        &tenant.admin_headers(),
    );
    assert_eq!(
        (with_session.status, with_session.code()),
        (403, "forbidden".to_string())
    );
}

fn an_admin_key_can_manage_keys_and_is_recorded_as_creator() {
    let tenant = TestTenant::new("adminkey");
    let admin_key = tenant.create_key(json!({"name": "automation", "scopes": "admin"}));
    let headers = [("X-Api-Key", admin_key["key"].as_str().unwrap())];
    let response = send_json(
        "POST",
        &tenant.name,
        "/api/v1/api-keys",
        &headers,
        &json!({"name": "made by a key"}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    let id = response.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        tenant.key(&id)["createdBy"],
        format!("apikey:{}", admin_key["id"].as_str().unwrap())
    );
    assert_eq!(get(&tenant.name, "/api/v1/api-keys", &headers).status, 200);
}

fn pagination_walks_every_key_once_with_link_headers() {
    let tenant = TestTenant::new("pages");
    let created: BTreeSet<String> = (0..7)
        .map(|i| {
            tenant.create_key(json!({"name": format!("key {i}")}))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut order = Vec::new();
    let (mut seen, mut next) = (Vec::new(), Some("/api/v1/api-keys?limit=3".to_string()));
    let mut pages = 0;
    while let Some(path) = next.take() {
        let response = get(&tenant.name, &path, &tenant.admin_headers());
        assert_eq!(response.status, 200, "{}", response.text());
        let page = response.json();
        assert!(page.as_array().unwrap().len() <= 3);
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_string()),
        );
        order.extend(page.as_array().unwrap().iter().map(|k| {
            let created_at = chrono::DateTime::parse_from_rfc3339(k["createdAt"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            (created_at, k["id"].as_str().unwrap().to_string())
        }));
        next = response.header("Link").map(|link| {
            assert!(link.ends_with(r#">; rel="next""#), "{link}");
            let url = &link[1..link.find('>').unwrap()];
            url[url.find("/api/").unwrap()..].to_string()
        });
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7, "no overlap");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), created, "no gap");
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "newest first, ties by id: {order:?}"
    );
}

fn healthz_answers() {
    let response = get("acme", "/healthz", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), json!({"status": "ok"}));
}
