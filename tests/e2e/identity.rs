//! The identity assertion, checked as an origin would: with a JWT library this project did not
//! write (jsonwebtoken), against the JWK Set fetched from the Worker, and against the request the
//! origin actually received.

use crate::harness::*;
use crate::trials;
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("identity":
        a_keyed_request_carries_an_assertion_of_exactly_that_request,
        the_key_set_is_public_cacheable_and_never_private,
        a_tampered_or_replayed_assertion_fails_verification,
        without_a_signing_key_keyed_requests_get_503_and_others_pass,
        after_a_signing_key_rotation_both_kids_verify,
    )
}

/// The claims an origin reads.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub tenant: String,
    pub scopes: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub htm: String,
    pub htu: String,
}

/// The JWK Set a Worker instance publishes.
pub fn key_set(port: u16) -> String {
    let response = send(port, "GET", "acme", "/.well-known/jwks.json", &[], None);
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

/// What an origin does with `X-Rally-Identity`: verify the signature with the key its `kid`
/// names in `key_set` (EdDSA only), the issuer, the audience (this origin) and the expiry, then
/// check that the claims describe the request it got: method, path, tenant and key.
pub fn verify_for_request(
    token: &str,
    key_set: &str,
    audience: &str,
    got: &Recorded,
) -> Result<Claims, String> {
    let header = decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let set: JwkSet = serde_json::from_str(key_set).map_err(|e| format!("key set: {e}"))?;
    let jwk = set.find(&kid).ok_or(format!("unknown kid {kid}"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("jwk: {e}"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["rally-edge"]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // The library checks `exp` against its own clock; the origin checked it on arrival, which
    // for the run's last check may be minutes ago. So: the library's check when the request is
    // fresh, and the same rule against the arrival time otherwise.
    validation.validate_exp = now_seconds() - got.received_at < 5;
    let claims = decode::<Claims>(token, &key, &validation)
        .map_err(|e| format!("verify: {e}"))?
        .claims;
    if !(claims.iat <= got.received_at + 5 && got.received_at < claims.exp) {
        return Err(format!(
            "expired on arrival: iat {}, exp {}, arrived {}",
            claims.iat, claims.exp, got.received_at
        ));
    }
    let path = got.url.split('?').next().unwrap_or_default();
    let expected = (
        got.method.as_str(),
        path,
        got.header("X-Rally-Tenant").unwrap_or_default(),
        format!(
            "apikey:{}",
            got.header("X-Rally-Api-Key-Id").unwrap_or_default()
        ),
        got.header("X-Rally-Scopes").unwrap_or_default(),
    );
    let actual = (
        claims.htm.as_str(),
        claims.htu.as_str(),
        claims.tenant.as_str(),
        claims.sub.clone(),
        claims.scopes.as_str(),
    );
    if actual != expected {
        return Err(format!(
            "claims {actual:?} describe another request: {expected:?}"
        ));
    }
    if claims.exp - claims.iat > 60 || claims.exp <= claims.iat {
        return Err(format!("lifetime {} s", claims.exp - claims.iat));
    }
    Ok(claims)
}

/// Run last: every request the origin received with a key id carried an assertion that the
/// library verifies against the key set of the instance that forwarded it (the main instance's,
/// or the rotated one's, which publishes both keys).
pub fn every_keyed_request_carried_a_verified_assertion() -> Result<(), String> {
    let sets = [
        key_set(worker().port),
        key_set(instance("rotated-identity").port),
    ];
    let audience = origin_audience();
    let mut checked = 0;
    for got in worker().origin.all() {
        if got.header("X-Rally-Api-Key-Id").is_none() {
            if got.header("X-Rally-Identity").is_some() {
                return Err(format!("{} carried an assertion without a key", got.url));
            }
            continue;
        }
        let token = got
            .header("X-Rally-Identity")
            .ok_or(format!("{} {} carried no assertion", got.method, got.url))?;
        remember_secret(token);
        let verified = sets
            .iter()
            .any(|set| verify_for_request(token, set, &audience, &got).is_ok());
        if !verified {
            let why = verify_for_request(token, &sets[0], &audience, &got).unwrap_err();
            return Err(format!("{} {}: {why}", got.method, got.url));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err("the origin received no keyed request".into());
    }
    eprintln!("identity: {checked} keyed requests, each with a verified assertion");
    Ok(())
}

fn origin_audience() -> String {
    format!("http://127.0.0.1:{}", worker().origin.port)
}

fn a_keyed_request_carries_an_assertion_of_exactly_that_request() {
    let tenant = TestTenant::new("assert");
    let created = tenant.create_key(json!({"name": "ETL", "scopes": "read,write"}));
    let key = created["key"].as_str().unwrap();
    let path = unique_path("asserted");
    let response = request(
        "PUT",
        &tenant.name,
        &format!("{path}?page=2"),
        &[("X-Api-Key", key), ("X-Rally-Identity", "forged.by.client")],
        Some(b"{}"),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let got = &worker().origin.received(&format!("{path}?page=2"))[0];
    let token = got.header("X-Rally-Identity").expect("an assertion");
    remember_secret(token);
    let claims = verify_for_request(token, &key_set(worker().port), &origin_audience(), got)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims.iss, "rally-edge");
    assert_eq!(claims.aud, origin_audience());
    assert_eq!(
        claims.sub,
        format!("apikey:{}", created["id"].as_str().unwrap())
    );
    assert_eq!(
        (claims.htm.as_str(), claims.htu.as_str()),
        ("PUT", path.as_str())
    );
    assert_eq!(claims.scopes, "read,write");
    assert_eq!(Some(claims.jti.as_str()), response.header("X-Request-Id"));
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    // A request without a key carries no assertion, whatever the client sent.
    let path = unique_path("unkeyed");
    assert_eq!(
        get(
            &tenant.name,
            &path,
            &[("X-Rally-Identity", "forged.by.client")]
        )
        .status,
        200
    );
    assert_eq!(
        worker().origin.received(&path)[0].header("X-Rally-Identity"),
        None
    );
}

fn the_key_set_is_public_cacheable_and_never_private() {
    for tenant in ["acme", "globex"] {
        let response = send(
            worker().port,
            "GET",
            tenant,
            "/.well-known/jwks.json",
            &[],
            None,
        );
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("Cache-Control"),
            Some("public, max-age=300")
        );
        let set = response.json();
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        for key in keys {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
            assert_eq!(key.get("d"), None, "a private part is published: {key}");
        }
    }
    let wrong = send(
        worker().port,
        "POST",
        "acme",
        "/.well-known/jwks.json",
        &[],
        None,
    );
    assert_eq!(
        (wrong.status, wrong.header("Allow")),
        (405, Some("GET, HEAD"))
    );
}

/// A token with one segment replaced.
fn with_segment(token: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = segment;
    parts.join(".")
}

fn b64(value: &Value) -> String {
    use std::fmt::Write;
    // Unpadded base64url, written out here so that the test needs no encoder of the Worker's.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = value.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let _ = out.write_char(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn a_tampered_or_replayed_assertion_fails_verification() {
    let tenant = TestTenant::new("tamper");
    let key = tenant.create_key(json!({"name": "k"}))["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (first, second) = (unique_path("first"), unique_path("second"));
    for path in [&first, &second] {
        assert_eq!(get(&tenant.name, path, &[("X-Api-Key", &key)]).status, 200);
    }
    let got = &worker().origin.received(&first)[0];
    let other = &worker().origin.received(&second)[0];
    let token = got.header("X-Rally-Identity").unwrap().to_string();
    remember_secret(&token);
    let set = key_set(worker().port);
    let audience = origin_audience();
    assert!(verify_for_request(&token, &set, &audience, got).is_ok());

    // The claims changed: the signature no longer matches.
    let claims: Value =
        serde_json::from_slice(&decode_segment(token.split('.').nth(1).unwrap())).unwrap();
    let mut forged = claims.clone();
    forged["tenant"] = json!("globex");
    let tampered = with_segment(&token, 1, &b64(&forged));
    assert!(verify_for_request(&tampered, &set, &audience, got)
        .unwrap_err()
        .starts_with("verify"));
    // Another algorithm, or none at all, is refused whatever the signature.
    let none = with_segment(
        &with_segment(&token, 0, &b64(&json!({"alg": "none", "typ": "JWT"}))),
        2,
        "",
    );
    assert!(verify_for_request(&none, &set, &audience, got).is_err());
    // A genuine assertion replayed on another path fails the htu check.
    let replayed = verify_for_request(&token, &set, &audience, other).unwrap_err();
    assert!(replayed.contains("another request"), "{replayed}");
    // And one meant for another origin fails the audience check.
    assert!(verify_for_request(&token, &set, "https://elsewhere.example", got).is_err());
}

fn decode_segment(segment: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    for chunk in segment.as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (u32::from(value(*c)) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn without_a_signing_key_keyed_requests_get_503_and_others_pass() {
    let port = instance("no-identity").port;
    let admin = format!("Bearer {}", session_token("unsigned", "admin"));
    let created = send(
        port,
        "POST",
        "unsigned",
        "/api/v1/api-keys",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"name": "k"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let key = created.json()["key"].as_str().unwrap().to_string();
    remember_secret(&key);
    let path = unique_path("unsigned");
    let refused = send(port, "GET", "unsigned", &path, &[("X-Api-Key", &key)], None);
    assert_eq!(
        (refused.status, refused.code()),
        (503, "identity_not_configured".to_string()),
        "{}",
        refused.text()
    );
    assert!(worker().origin.received(&path).is_empty());
    let path = unique_path("unsigned");
    assert_eq!(send(port, "GET", "unsigned", &path, &[], None).status, 200);
    assert_eq!(worker().origin.received(&path).len(), 1);
    assert_eq!(key_set_json(port)["keys"], json!([]));
}

fn key_set_json(port: u16) -> Value {
    serde_json::from_str(&key_set(port)).unwrap()
}

fn after_a_signing_key_rotation_both_kids_verify() {
    let rotated = instance("rotated-identity");
    let set = key_set(rotated.port);
    let kids: Vec<String> = key_set_json(rotated.port)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kids.len(), 2, "{set}");
    let audience = origin_audience();
    // An assertion signed before the rotation (the main instance still has the old key) ...
    let tenant = TestTenant::new("rotate-old");
    let key = tenant.create_key(json!({"name": "k"}))["key"]
        .as_str()
        .unwrap()
        .to_string();
    let path = unique_path("old-kid");
    assert_eq!(get(&tenant.name, &path, &[("X-Api-Key", &key)]).status, 200);
    let got = &worker().origin.received(&path)[0];
    let old = got.header("X-Rally-Identity").unwrap();
    remember_secret(old);
    let old_kid = decode_header(old).unwrap().kid.unwrap();
    assert_eq!(old_kid, kids[1], "the previous key is published second");
    assert!(verify_for_request(old, &set, &audience, got).is_ok());
    // ... and one signed after it, with the new key.
    let admin = format!("Bearer {}", session_token("rotated", "admin"));
    let created = send(
        rotated.port,
        "POST",
        "rotated",
        "/api/v1/api-keys",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"name": "k"}"#),
    );
    let key = created.json()["key"].as_str().unwrap().to_string();
    remember_secret(&key);
    let path = unique_path("new-kid");
    assert_eq!(
        send(
            rotated.port,
            "GET",
            "rotated",
            &path,
            &[("X-Api-Key", &key)],
            None
        )
        .status,
        200
    );
    let got = &worker().origin.received(&path)[0];
    let new = got.header("X-Rally-Identity").unwrap();
    remember_secret(new);
    assert_eq!(decode_header(new).unwrap().kid.unwrap(), kids[0]);
    assert!(verify_for_request(new, &set, &audience, got).is_ok());
}
