//! GitHub's secret-scanning partner alerts, signed as GitHub signs them: ECDSA P-256 with
//! SHA-256 over the raw body, made here with Node's crypto (a library this project did not
//! write), with a key pair made for the run and published by the recording origin.

use crate::harness::*;
use crate::trials;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::OnceLock;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("leaks":
        a_signed_alert_revokes_a_live_key_at_once_and_labels_every_token,
        a_report_of_a_secret_that_has_ended_leaves_its_successor_working,
        unsigned_or_wrongly_signed_alerts_revoke_nothing_and_read_no_storage,
        malformed_and_oversized_alerts_are_refused,
    )
}

const PATH: &str = "/api/v1/secret-scanning/github";
pub const KEY_ID: &str = "e2e-secret-scanning-key";

/// Publishes the run's key list at the recording origin (once).
pub fn publish_keys() {
    key_pair();
}

/// The private key (PKCS#8 PEM) whose public half the run published, for other tests that
/// report leaks (the browser test signs with it in Node).
pub fn private_key() -> &'static str {
    &key_pair().1
}

/// (public key PEM, private key PEM) of the run, published once in the origin's key list.
fn key_pair() -> &'static (String, String) {
    static PAIR: OnceLock<(String, String)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let out = node(
            "const c = require('crypto');\
             const { publicKey, privateKey } = c.generateKeyPairSync('ec', { namedCurve: 'P-256' });\
             process.stdout.write(JSON.stringify([\
               publicKey.export({ type: 'spki', format: 'pem' }),\
               privateKey.export({ type: 'pkcs8', format: 'pem' })]));",
            &[],
        );
        let [public, private]: [String; 2] = serde_json::from_str(&out).unwrap();
        remember_secret(private.lines().nth(1).unwrap());
        let list = json!({"public_keys": [
            {"key_identifier": "an-older-key", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "is_current": false},
            {"key_identifier": KEY_ID, "key": public, "is_current": true},
        ]});
        worker()
            .origin
            .serve(SECRET_SCANNING_KEYS_PATH, &list.to_string());
        (public, private)
    })
}

fn node(script: &str, args: &[&str]) -> String {
    let output = Command::new("node")
        .arg("-e")
        .arg(script)
        .args(args)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Base64 of the DER signature of `body`, as GitHub sends it.
fn sign(body: &[u8]) -> String {
    let body_hex = hex::encode(body);
    node(
        "const c = require('crypto');\
         const [body, key] = process.argv.slice(1);\
         process.stdout.write(c.sign('sha256', Buffer.from(body, 'hex'), key).toString('base64'));",
        &[&body_hex, &key_pair().1],
    )
}

/// Posts an alert on the service's bare host (no tenant in it).
fn post(body: &[u8], headers: &[(&str, &str)]) -> Response {
    let host = format!("localhost:{}", worker().port);
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    send(worker().port, "POST", &host, PATH, &all, Some(body))
}

fn signed(body: &[u8]) -> Response {
    let signature = sign(body);
    post(
        body,
        &[
            ("Github-Public-Key-Identifier", KEY_ID),
            ("Github-Public-Key-Signature", &signature),
        ],
    )
}

fn a_signed_alert_revokes_a_live_key_at_once_and_labels_every_token() {
    let tenant = TestTenant::new("leak");
    let leaked = tenant.create_key(json!({"name": "in a notebook"}));
    let key = leaked["key"].as_str().unwrap();
    assert_eq!(
        get(&tenant.name, &unique_path("before"), &[("X-Api-Key", key)]).status,
        200
    );
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).unwrap();
    let unknown = format!("rk_live_{}", hex::encode(random));
    let stripe_like = format!("rk_live_{}", "A".repeat(99));
    let url = "https://github.com/octo/notebooks/blob/main/.env";
    let body = json!([
        {"token": key, "type": "rally_api_key", "url": url, "source": "content"},
        {"token": unknown, "type": "rally_api_key", "url": url, "source": "content"},
        {"token": stripe_like, "type": "rally_api_key", "url": url, "source": "commit"},
    ])
    .to_string();
    let response = signed(body.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    let labels: Value = response.json();
    assert_eq!(
        labels,
        json!([
            {"token_hash": sha256_hex(key), "token_type": "rally_api_key", "label": "true_positive"},
            {"token_hash": sha256_hex(&unknown), "token_type": "rally_api_key", "label": "false_positive"},
            {"token_hash": sha256_hex(&stripe_like), "token_type": "rally_api_key", "label": "false_positive"},
        ])
    );
    assert!(!response.text().contains(key));
    // Revoked at once, at this location: the next request is refused and never forwarded.
    let path = unique_path("after");
    assert_eq!(get(&tenant.name, &path, &[("X-Api-Key", key)]).status, 401);
    assert!(worker().origin.received(&path).is_empty());
    let id = leaked["id"].as_str().unwrap();
    assert_eq!(tenant.key(id)["isActive"], false);
    // The audit log says who revoked it and where the key was found.
    let recorded = get(
        &tenant.name,
        &format!("/api/v1/audit-events?keyId={id}&action=api_key.leaked"),
        &tenant.admin_headers(),
    )
    .json();
    assert_eq!(recorded.as_array().map(Vec::len), Some(1), "{recorded}");
    assert_eq!(
        (&recorded[0]["actor"], &recorded[0]["details"]),
        (
            &json!("secret-scanning:github"),
            &json!({"url": url, "source": "content"})
        )
    );
    // Reported again, a revoked key is still ours, and nothing more is recorded.
    let again = signed(
        json!([{"token": key, "type": "rally_api_key"}])
            .to_string()
            .as_bytes(),
    );
    assert_eq!(again.json()[0]["label"], "true_positive");
    let all = get(
        &tenant.name,
        &format!("/api/v1/audit-events?keyId={id}"),
        &tenant.admin_headers(),
    )
    .json();
    let actions: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["api_key.leaked", "api_key.created"]);
}

fn unsigned_or_wrongly_signed_alerts_revoke_nothing_and_read_no_storage() {
    let tenant = TestTenant::new("leak-forged");
    let live = tenant.create_key(json!({"name": "live"}));
    let key = live["key"].as_str().unwrap();
    let body = json!([{"token": key, "type": "rally_api_key", "url": "x", "source": "content"}])
        .to_string();
    let other_signature = sign(b"[]");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no signature", vec![]),
        (
            "no key id",
            vec![("Github-Public-Key-Signature", &other_signature)],
        ),
        (
            "a signature of another body",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID),
                ("Github-Public-Key-Signature", &other_signature),
            ],
        ),
        (
            "an unknown key id",
            vec![
                ("Github-Public-Key-Identifier", "no-such-key"),
                ("Github-Public-Key-Signature", &other_signature),
            ],
        ),
        (
            "a key that does not parse",
            vec![
                ("Github-Public-Key-Identifier", "an-older-key"),
                ("Github-Public-Key-Signature", &other_signature),
            ],
        ),
        (
            "a signature that is not base64 DER",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID),
                ("Github-Public-Key-Signature", "bm90IGEgc2lnbmF0dXJl"),
            ],
        ),
    ];
    for (what, headers) in cases {
        let response = post(body.as_bytes(), &headers);
        assert_eq!(
            (response.status, response.code()),
            (401, "unauthorized".to_string()),
            "{what}: {}",
            response.text()
        );
        let line = log_line(response.header("X-Request-Id").unwrap());
        assert_eq!(line["d1Queries"], 0, "{what}: {line}");
    }
    assert_eq!(tenant.key(live["id"].as_str().unwrap())["isActive"], true);
    assert_eq!(
        get(&tenant.name, &unique_path("still"), &[("X-Api-Key", key)]).status,
        200
    );
}

fn malformed_and_oversized_alerts_are_refused() {
    for (body, status, code) in [
        (b"{\"token\": \"x\"}".to_vec(), 400, "invalid_json"),
        (
            b"[{\"type\": \"rally_api_key\"}]".to_vec(),
            400,
            "invalid_json",
        ),
        (b"not json".to_vec(), 400, "invalid_json"),
    ] {
        let response = signed(&body);
        assert_eq!(
            (response.status, response.code()),
            (status, code.to_string()),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let too_many = serde_json::to_vec(&vec![json!({"token": "t", "type": "x"}); 1001]).unwrap();
    assert_eq!(signed(&too_many).status, 413);
    let huge = vec![b' '; 1024 * 1024 + 1];
    let response = post(
        &huge,
        &[
            ("Github-Public-Key-Identifier", KEY_ID),
            ("Github-Public-Key-Signature", &sign(b"[]")),
        ],
    );
    assert_eq!(
        (response.status, response.code()),
        (413, "payload_too_large".to_string())
    );
    // Only this one path is the partner endpoint; another method there is 405.
    let host = format!("localhost:{}", worker().port);
    let wrong = send(worker().port, "GET", &host, PATH, &[], None);
    assert_eq!((wrong.status, wrong.header("Allow")), (405, Some("POST")));
}

/// A key rotated with a grace period: once the grace is over the old secret is no credential,
/// even while its row waits to be deleted. A report of it is ours (`true_positive`) but must not
/// revoke the key, whose new secret was not reported.
fn a_report_of_a_secret_that_has_ended_leaves_its_successor_working() {
    let tenant = TestTenant::new("leak-ended");
    let created = tenant.create_key(json!({"name": "rotated"}));
    let (old, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let rotated = send_json(
        "POST",
        &tenant.name,
        &format!("/api/v1/api-keys/{id}/rotate"),
        &tenant.admin_headers(),
        &json!({"gracePeriodSeconds": 1}),
    );
    assert_eq!(rotated.status, 201, "{}", rotated.text());
    let new = rotated.json()["key"].as_str().unwrap().to_string();
    remember_secret(&new);
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let body = json!([{"token": old, "type": "rally_api_key", "url": "https://github.com/o/r", "source": "content"}])
        .to_string();
    let response = signed(body.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()[0]["label"], "true_positive");
    assert_eq!(tenant.key(id)["isActive"], true);
    assert_eq!(
        get(
            &tenant.name,
            &unique_path("successor"),
            &[("X-Api-Key", &new)]
        )
        .status,
        200
    );
    let leaked = get(
        &tenant.name,
        &format!("/api/v1/audit-events?keyId={id}&action=api_key.leaked"),
        &tenant.admin_headers(),
    );
    assert_eq!(leaked.json(), json!([]));
}
