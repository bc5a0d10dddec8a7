//! The identity assertion the edge adds to every request it admits with a key: an EdDSA-signed
//! JWT (`X-Rally-Identity`) that the origin verifies against the published key set, so that
//! `X-Rally-*` headers written by anyone who reaches the origin directly are worth nothing.
//!
//! Pure: the signing keys are parsed and their public halves published here; the signature
//! itself is the runtime's (Web Crypto Ed25519), over the signing input built here.

use super::{base64url, time::Millis};
use serde::{Deserialize, Serialize};

/// The issuer every assertion names.
pub const ISSUER: &str = "rally-edge";
/// How long an assertion is valid: long enough for the hop to the origin, short enough that a
/// captured one is of little use.
pub const LIFETIME_SECONDS: i64 = 60;

/// An Ed25519 private key as a JWK (RFC 8037), as `wrangler secret put IDENTITY_SIGNING_KEY`
/// takes it: `{"kty": "OKP", "crv": "Ed25519", "x": …, "d": …, "kid": …}`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    /// The public key, base64url.
    pub x: String,
    /// The private key, base64url. Only the runtime's key import ever sees it.
    d: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, REDACTED)", self.kid)
    }
}

#[derive(Deserialize)]
struct JwkText<'a> {
    kty: &'a str,
    crv: &'a str,
    x: &'a str,
    d: Option<&'a str>,
    kid: Option<&'a str>,
}

/// The public half, as published in the JWK Set. It has no field that could hold a private part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

impl SigningKey {
    /// A usable key or nothing: an Ed25519 JWK with 32-byte `x` and `d` and a `kid`.
    pub fn parse(text: &str) -> Option<SigningKey> {
        let jwk: JwkText<'_> = serde_json::from_str(text).ok()?;
        let is_32_bytes = |b64: &str| base64url::decode(b64).is_some_and(|bytes| bytes.len() == 32);
        let kid = jwk.kid.filter(|kid| !kid.is_empty() && kid.len() <= 128)?;
        let d = jwk.d?;
        (jwk.kty == "OKP" && jwk.crv == "Ed25519" && is_32_bytes(jwk.x) && is_32_bytes(d)).then(
            || SigningKey {
                kid: kid.to_string(),
                x: jwk.x.to_string(),
                d: d.to_string(),
            },
        )
    }

    /// The JWK that Web Crypto's `importKey("jwk", …, "Ed25519", …)` takes: only the members it
    /// knows, so that nothing else of the secret's text is handed on.
    pub fn private_jwk_json(&self) -> String {
        format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}","d":"{}"}}"#,
            self.x, self.d
        )
    }

    pub fn public(&self) -> PublicJwk {
        PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            x: self.x.clone(),
            kid: self.kid.clone(),
            alg: "EdDSA",
            use_: "sig",
        }
    }
}

/// `{"keys": [...]}`: the current key first, then the previous one during a rotation.
pub fn jwk_set(keys: &[&SigningKey]) -> String {
    #[derive(Serialize)]
    struct Set {
        keys: Vec<PublicJwk>,
    }
    let set = Set {
        keys: keys.iter().map(|k| k.public()).collect(),
    };
    serde_json::to_string(&set).unwrap_or_default()
}

/// What one assertion says. Every field is one the origin checks against the request it got.
pub struct Assertion<'a> {
    /// The origin of ORIGIN_URL: scheme, host and port.
    pub audience: &'a str,
    pub key_id: &'a str,
    pub tenant: &'a str,
    pub scopes: &'a str,
    pub request_id: &'a str,
    pub method: &'a str,
    /// The request path, without the query.
    pub path: &'a str,
    pub now: Millis,
}

impl Assertion<'_> {
    /// `base64url(header) . base64url(claims)`, the bytes to sign.
    pub fn signing_input(&self, kid: &str) -> String {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'static str,
            typ: &'static str,
            kid: &'a str,
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'static str,
            aud: &'a str,
            sub: String,
            tenant: &'a str,
            scopes: &'a str,
            iat: i64,
            exp: i64,
            jti: &'a str,
            htm: &'a str,
            htu: &'a str,
        }
        let iat = self.now / 1000;
        let header = Header {
            alg: "EdDSA",
            typ: "JWT",
            kid,
        };
        let claims = Claims {
            iss: ISSUER,
            aud: self.audience,
            sub: format!("apikey:{}", self.key_id),
            tenant: self.tenant,
            scopes: self.scopes,
            iat,
            exp: iat + LIFETIME_SECONDS,
            jti: self.request_id,
            htm: self.method,
            htu: self.path,
        };
        let segment = |json: Result<String, serde_json::Error>| {
            base64url::encode(json.unwrap_or_default().as_bytes())
        };
        format!(
            "{}.{}",
            segment(serde_json::to_string(&header)),
            segment(serde_json::to_string(&claims))
        )
    }
}

/// The compact JWT: the signing input and its signature.
pub fn token(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", base64url::encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";

    fn jwk(extra: Value) -> String {
        let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": X, "d": D, "kid": "k1"});
        jwk.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        jwk.to_string()
    }

    #[test]
    fn a_private_jwk_is_parsed_and_only_its_public_half_is_published() {
        let key = SigningKey::parse(&jwk(json!({}))).unwrap();
        let set: Value = serde_json::from_str(&jwk_set(&[&key])).unwrap();
        assert_eq!(
            set,
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "k1", "alg": "EdDSA", "use": "sig"}]})
        );
        assert!(!jwk_set(&[&key]).contains(D));
        assert!(!format!("{key:?}").contains(D));
        assert!(key.private_jwk_json().contains(D));
    }

    #[test]
    fn unusable_keys_are_refused() {
        for bad in [
            jwk(json!({"kty": "EC"})),
            jwk(json!({"crv": "Ed448"})),
            jwk(json!({"kid": ""})),
            jwk(json!({"kid": null})),
            jwk(json!({"d": null})),
            jwk(json!({"d": "c2hvcnQ"})),
            jwk(json!({"x": "not base64url!"})),
            "not json".to_string(),
            String::new(),
        ] {
            assert_eq!(SigningKey::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn the_assertion_carries_exactly_the_claims_of_the_contract() {
        let input = Assertion {
            audience: "https://origin.rallycrm.io",
            key_id: "0b6f8d2e-5c1a-4e3b-9a7d-2f4c6e8a0b1c",
            tenant: "acme",
            scopes: "read,write",
            request_id: "8f3e2a",
            method: "DELETE",
            path: "/contacts/1",
            now: 1_700_000_000_999,
        }
        .signing_input("k1");
        let (header, claims) = input.split_once('.').unwrap();
        let decode =
            |s: &str| -> Value { serde_json::from_slice(&base64url::decode(s).unwrap()).unwrap() };
        assert_eq!(
            decode(header),
            json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
        );
        assert_eq!(
            decode(claims),
            json!({
                "iss": "rally-edge", "aud": "https://origin.rallycrm.io",
                "sub": "apikey:0b6f8d2e-5c1a-4e3b-9a7d-2f4c6e8a0b1c", "tenant": "acme",
                "scopes": "read,write", "iat": 1_700_000_000, "exp": 1_700_000_060,
                "jti": "8f3e2a", "htm": "DELETE", "htu": "/contacts/1"
            })
        );
        assert_eq!(token("a.b", &[0xff, 0xee]), "a.b._-4");
    }
}
