//! The API keys settings page: the page itself, cookie sessions and their CSRF check, the
//! development sign-in (and that it is off by default), and the whole flow in a real browser.

use crate::harness::*;
use crate::trials;
use serde_json::json;
use std::process::Command;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("settings":
        the_page_is_served_with_a_strict_content_security_policy,
        a_cookie_session_may_manage_keys_but_not_from_another_site,
        the_dev_sign_in_is_off_by_default,
        the_settings_flow_works_in_chromium,
    )
}

fn dev_sign_in(tenant: &str) -> String {
    let response = request(
        "POST",
        tenant,
        "/settings/dev-login",
        &[("Sec-Fetch-Site", "same-origin")],
        None,
    );
    assert_eq!(response.status, 303, "{}", response.text());
    assert_eq!(response.header("Location"), Some("/settings/api-keys"));
    let cookie = response.header("Set-Cookie").unwrap().to_string();
    assert!(cookie.starts_with("__Host-rally_session="), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    remember_secret(pair.trim_start_matches("__Host-rally_session="));
    pair
}

fn the_page_is_served_with_a_strict_content_security_policy() {
    let page = get("acme", "/settings/api-keys", &[]);
    assert_eq!(page.status, 200);
    assert!(page
        .header("Content-Type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("<h1>API Keys</h1>"));
    assert!(page
        .header("Content-Security-Policy")
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(page.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(get("acme", "/settings/api-keys.js", &[]).status, 200);
    let wrong_method = request("DELETE", "acme", "/settings/api-keys", &[], None);
    assert_eq!(
        (wrong_method.status, wrong_method.code()),
        (405, "method_not_allowed".to_string())
    );
}

fn a_cookie_session_may_manage_keys_but_not_from_another_site() {
    let tenant = TestTenant::new("cookie");
    let cookie = dev_sign_in(&tenant.name);
    let own_origin = format!("http://{}.localhost:{}", tenant.name, worker().port);
    let body = json!({"name": "from the page"});
    let refused: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "cross-site fetch",
            vec![
                ("Sec-Fetch-Site", "cross-site"),
                ("Origin", "https://evil.example"),
            ],
        ),
        (
            "same-site, other subdomain",
            vec![
                ("Sec-Fetch-Site", "same-site"),
                ("Origin", "http://other.localhost"),
            ],
        ),
        (
            "foreign Origin only",
            vec![("Origin", "https://evil.example")],
        ),
        ("no proof of origin at all", vec![]),
    ];
    for (label, extra) in refused {
        let mut headers = vec![("Cookie", cookie.as_str())];
        headers.extend(extra);
        let response = send_json("POST", &tenant.name, "/api/v1/api-keys", &headers, &body);
        assert_eq!(
            (response.status, response.code()),
            (403, "forbidden".to_string()),
            "{label}"
        );
    }
    assert!(tenant.list().is_empty(), "nothing was created");
    let allowed = send_json(
        "POST",
        &tenant.name,
        "/api/v1/api-keys",
        &[("Cookie", &cookie), ("Origin", &own_origin)],
        &body,
    );
    assert_eq!(allowed.status, 201, "{}", allowed.text());
    assert_eq!(
        tenant.key(allowed.json()["id"].as_str().unwrap())["createdBy"],
        format!("dev-admin@{}.localhost", tenant.name)
    );
    // Reading needs no proof: a cross-site page cannot read the answer anyway.
    assert_eq!(
        get(&tenant.name, "/api/v1/api-keys", &[("Cookie", &cookie)]).status,
        200
    );
    // A cookie for one tenant is no session for another.
    assert_eq!(
        get("acme", "/api/v1/api-keys", &[("Cookie", &cookie)]).status,
        401
    );
}

fn the_dev_sign_in_is_off_by_default() {
    // wrangler.toml (and so every deployment) never sets DEV_LOGIN ...
    let config = std::fs::read_to_string(project_root().join("wrangler.toml")).unwrap();
    assert!(
        !config.contains("DEV_LOGIN"),
        "wrangler.toml must not enable the dev sign-in"
    );
    // ... and a Worker without the var (the contract instance: wrangler.toml's bindings, no
    // .dev.vars, no --var) has no such route.
    let port = instance("contract").port;
    let response = send(
        port,
        "POST",
        "acme",
        "/settings/dev-login",
        &[("Sec-Fetch-Site", "same-origin")],
        None,
    );
    assert_eq!(
        (response.status, response.code()),
        (404, "not_found".to_string())
    );
    assert!(response.header("Set-Cookie").is_none());
}

fn the_settings_flow_works_in_chromium() {
    let tenant = TestTenant::new("browser");
    let screenshot = project_root().join(".e2e/settings-page.png");
    let output = Command::new(project_root().join("node_modules/.bin/node"))
        .arg(project_root().join("tests/browser/settings-page.mjs"))
        .args([worker().port.to_string(), tenant.name.clone()])
        .arg(&screenshot)
        .env("LEAK_SIGNING_KEY_ID", crate::leaks::KEY_ID)
        .env("LEAK_SIGNING_KEY", crate::leaks::private_key())
        .output()
        .expect("run the browser test with node");
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(screenshot.exists());
}
