//! Credentials and tenants: session JWTs signed independently of the Worker's code, a tenant of
//! its own per test with key helpers, and the record of every secret the run handled.

use super::client::{get, request, send_json};
use rally_edge_keys::domain::base64url;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The JWT_SECRET every instance runs with (passed as a --var, never the dev one).
pub const JWT_SECRET: &str = "e2e-secret-not-the-dev-one-5f1c";

/// The Ed25519 JWK that signs identity assertions in every instance but those of
/// `identity.rs` (made for the tests with scripts/identity-key.mjs; never the development one).
#[macro_export]
macro_rules! identity_key {
    () => {
        r#"{"kty":"OKP","crv":"Ed25519","x":"UCllOaLdBrrZAa-RbI3Vsibwfyxy9giklHGLRwxCih8","d":"B8Iwl0KdWcePAxEUoI_bxD-HW09ld7UfsEUlc3ZYhug","kid":"e2e-current-XJ3FSu3o2HesGQhg3Pm-94hFku4eB3YbMCKEKnkruN4"}"#
    };
}
/// The key that replaces it in the instance that has rotated its signing key.
#[macro_export]
macro_rules! next_identity_key {
    () => {
        r#"{"kty":"OKP","crv":"Ed25519","x":"s0A-8cxhgqoZKDW5DWxfVDzptoEgC0DsKEby1yDedIs","d":"TyYd3uaIaYGYmx_gY2U_K9zKlm8I-sV9KOAKYfFHNtI","kid":"e2e-next-zjG3wJvSjlXlW49rxgd0ijD7867hYKWTJtowctgTzl4"}"#
    };
}
/// The private parts of both, for the check that no log holds them.
pub const IDENTITY_PRIVATE_PARTS: [&str; 2] = [
    "B8Iwl0KdWcePAxEUoI_bxD-HW09ld7UfsEUlc3ZYhug",
    "TyYd3uaIaYGYmx_gY2U_K9zKlm8I-sV9KOAKYfFHNtI",
];

/// Every key and token the run has seen, for the final check that none reached a log.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn remember_secret(secret: &str) {
    SECRETS.lock().unwrap().push(secret.to_string());
}

/// What `remember_secret` has recorded so far.
pub fn remembered_secrets() -> Vec<String> {
    SECRETS.lock().unwrap().clone()
}

pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs claims with HS256, independently of the Worker's own code.
pub fn sign_jwt(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!(
        "{}.{}",
        base64url::encode(header.to_string().as_bytes()),
        base64url::encode(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let token = format!(
        "{signing_input}.{}",
        base64url::encode(&mac.finalize().into_bytes())
    );
    remember_secret(&token);
    token
}

pub fn session_token(tenant: &str, role: &str) -> String {
    let claims = json!({"sub": format!("user-{role}"), "tenant": tenant, "role": role, "email": format!("{role}@{tenant}.test"), "exp": now_seconds() + 3600});
    sign_jwt(&json!({"alg": "HS256", "typ": "JWT"}), &claims, JWT_SECRET)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A tenant of its own for each test, so that tests run in parallel without seeing each other.
pub struct TestTenant {
    pub name: String,
    pub admin: String,
}

impl TestTenant {
    pub fn new(label: &str) -> TestTenant {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).unwrap();
        let name = format!("{label}-{}", hex::encode(random));
        let admin = format!("Bearer {}", session_token(&name, "admin"));
        TestTenant { name, admin }
    }

    pub fn admin_headers(&self) -> [(&str, &str); 1] {
        [("Authorization", self.admin.as_str())]
    }

    pub fn create_key(&self, body: Value) -> Value {
        let response = send_json(
            "POST",
            &self.name,
            "/api/v1/api-keys",
            &self.admin_headers(),
            &body,
        );
        assert_eq!(response.status, 201, "create: {}", response.text());
        response.json()
    }

    /// Revokes a key as the admin; revocation answers 204.
    pub fn revoke(&self, id: &str) {
        let response = request(
            "DELETE",
            &self.name,
            &format!("/api/v1/api-keys/{id}"),
            &self.admin_headers(),
            None,
        );
        assert_eq!(response.status, 204, "revoke: {}", response.text());
    }

    /// Every key of the tenant, as the admin sees the list.
    pub fn list(&self) -> Vec<Value> {
        let response = get(
            &self.name,
            "/api/v1/api-keys?limit=1000",
            &self.admin_headers(),
        );
        assert_eq!(response.status, 200, "list: {}", response.text());
        response.json().as_array().unwrap().clone()
    }

    pub fn key(&self, id: &str) -> Value {
        let response = get(
            &self.name,
            &format!("/api/v1/api-keys/{id}"),
            &self.admin_headers(),
        );
        assert_eq!(response.status, 200, "get: {}", response.text());
        response.json()
    }
}
