//! Tenants never see each other: tenant B acting on tenant A's key id gets 404 on every verb,
//! and A's key is unchanged afterwards.

use crate::harness::*;
use crate::trials;
use serde_json::json;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("isolation": another_tenants_key_id_is_not_found_for_every_verb_and_stays_unchanged)
}

fn another_tenants_key_id_is_not_found_for_every_verb_and_stays_unchanged() {
    let a = TestTenant::new("iso-a");
    let b = TestTenant::new("iso-b");
    let key = a.create_key(json!({"name": "A's key", "scopes": "read,write"}));
    let id = key["id"].as_str().unwrap();
    let before = a.key(id);
    let path = format!("/api/v1/api-keys/{id}");
    let attempts: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", path.clone(), None),
        (
            "PATCH",
            path.clone(),
            Some(json!({"name": "taken over", "scopes": "admin"})),
        ),
        ("DELETE", path.clone(), None),
        (
            "POST",
            format!("{path}/rotate"),
            Some(json!({"gracePeriodSeconds": 0})),
        ),
    ];
    for (method, path, body) in attempts {
        let response = match body {
            Some(body) => send_json(method, &b.name, &path, &b.admin_headers(), &body),
            None => request(method, &b.name, &path, &b.admin_headers(), None),
        };
        assert_eq!(
            (response.status, response.code()),
            (404, "not_found".to_string()),
            "{method} {path}"
        );
    }
    assert_eq!(a.key(id), before, "A's key is unchanged");
    assert!(b.list().is_empty(), "B lists none of A's keys");
    let secret = key["key"].as_str().unwrap();
    assert_eq!(
        get(&a.name, &unique_path("iso"), &[("X-Api-Key", secret)]).status,
        200,
        "A's key still works for A"
    );
    assert_eq!(
        get(
            &b.name,
            "/api/v1/api-keys/current",
            &[("X-Api-Key", secret)]
        )
        .status,
        401
    );
}
