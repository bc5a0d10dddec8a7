//! Who may manage keys: the 401/403 matrix.

use crate::harness::*;
use crate::trials;
use serde_json::json;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("auth":
        bad_credentials_get_the_same_401_with_www_authenticate,
        valid_credentials_without_the_right_get_403,
        admin_sessions_and_admin_keys_may_manage,
    )
}

fn token(tenant: &str, role: Option<&str>, exp_offset: i64, secret: &str, alg: &str) -> String {
    let mut claims = json!({"sub": "u1", "tenant": tenant, "exp": now_seconds() + exp_offset});
    if let Some(role) = role {
        claims["role"] = json!(role);
    }
    format!(
        "Bearer {}",
        sign_jwt(&json!({"alg": alg, "typ": "JWT"}), &claims, secret)
    )
}

fn bad_credentials_get_the_same_401_with_www_authenticate() {
    let tenant = TestTenant::new("auth401");
    let other = TestTenant::new("auth401-other");
    let other_key = other.create_key(json!({"name": "theirs", "scopes": "admin"}));
    let unsigned = {
        let t = token(&tenant.name, Some("admin"), 3600, JWT_SECRET, "none");
        format!("{}.", &t[..t.rfind('.').unwrap()])
    };
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no credential", vec![]),
        (
            "expired session",
            vec![(
                "Authorization",
                token(&tenant.name, Some("admin"), -60, JWT_SECRET, "HS256"),
            )],
        ),
        (
            "bad signature",
            vec![(
                "Authorization",
                token(&tenant.name, Some("admin"), 3600, "not-the-secret", "HS256"),
            )],
        ),
        ("alg none", vec![("Authorization", unsigned)]),
        (
            "alg HS512",
            vec![(
                "Authorization",
                token(&tenant.name, Some("admin"), 3600, JWT_SECRET, "HS512"),
            )],
        ),
        (
            "another tenant's session",
            vec![("Authorization", other.admin.clone())],
        ),
        (
            "not a bearer token",
            vec![("Authorization", "Basic YWRtaW46YWRtaW4=".into())],
        ),
        (
            "garbage token",
            vec![("Authorization", "Bearer not.a.jwt".into())],
        ),
        (
            "another tenant's key",
            vec![("X-Api-Key", other_key["key"].as_str().unwrap().into())],
        ),
        (
            "unknown key",
            vec![(
                "X-Api-Key",
                "rk_live_0123456789abcdef0123456789abcdef".into(),
            )],
        ),
        ("malformed key", vec![("X-Api-Key", "rk_live_short".into())]),
    ];
    let mut bodies = Vec::new();
    for (label, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = get(&tenant.name, "/api/v1/api-keys", &headers);
        assert_eq!(
            (response.status, response.code()),
            (401, "unauthorized".to_string()),
            "{label}"
        );
        assert!(
            response
                .header("WWW-Authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{label}"
        );
        bodies.push(response.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every 401 has the same body"
    );
}

fn valid_credentials_without_the_right_get_403() {
    let tenant = TestTenant::new("auth403");
    let mut credentials: Vec<(String, (&str, String))> = vec![
        (
            "member session".into(),
            (
                "Authorization",
                token(&tenant.name, Some("member"), 3600, JWT_SECRET, "HS256"),
            ),
        ),
        (
            "session without role".into(),
            (
                "Authorization",
                token(&tenant.name, None, 3600, JWT_SECRET, "HS256"),
            ),
        ),
    ];
    for scopes in ["read", "write", "read,write"] {
        let key = tenant.create_key(json!({"name": scopes, "scopes": scopes}));
        credentials.push((
            format!("{scopes} key"),
            ("X-Api-Key", key["key"].as_str().unwrap().to_string()),
        ));
    }
    let count_before = tenant.list().len();
    for (label, (name, value)) in &credentials {
        for (method, body) in [
            ("GET", None),
            ("POST", Some(br#"{"name": "sneaky"}"#.as_slice())),
        ] {
            let response = request(
                method,
                &tenant.name,
                "/api/v1/api-keys",
                &[(name, value.as_str()), ("Content-Type", "application/json")],
                body,
            );
            assert_eq!(
                (response.status, response.code()),
                (403, "forbidden".to_string()),
                "{label} {method}"
            );
        }
    }
    assert_eq!(tenant.list().len(), count_before, "nothing was created");
}

fn admin_sessions_and_admin_keys_may_manage() {
    let tenant = TestTenant::new("authok");
    assert_eq!(
        get(&tenant.name, "/api/v1/api-keys", &tenant.admin_headers()).status,
        200
    );
    let admin_key = tenant.create_key(json!({"name": "admin", "scopes": "admin"}));
    assert_eq!(
        get(
            &tenant.name,
            "/api/v1/api-keys",
            &[("X-Api-Key", admin_key["key"].as_str().unwrap())]
        )
        .status,
        200
    );
    let lower_case_scheme = format!("bearer {}", &tenant.admin["Bearer ".len()..]);
    assert_eq!(
        get(
            &tenant.name,
            "/api/v1/api-keys",
            &[("Authorization", &lower_case_scheme)]
        )
        .status,
        200
    );
}
