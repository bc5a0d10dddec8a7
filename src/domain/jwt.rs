//! HS256 session tokens issued by the CRM. Only HS256 is accepted: `alg: none`, RS256 with the
//! secret as a public key and every other algorithm are refused before the signature is checked.

use super::base64url;
use hmac::{Hmac, Mac};
use serde::{de::IgnoredAny, Deserialize, Serialize};
use sha2::Sha256;

/// Tokens are a few hundred bytes; refusing large ones bounds the work an attacker can cause.
const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    /// Extensions we do not understand must make the token invalid (RFC 7515 §4.1.11).
    crit: Option<IgnoredAny>,
}

/// The claims this service reads; others (`iat`, `iss`, …) are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub exp: f64,
    pub nbf: Option<f64>,
    pub email: Option<String>,
    pub role: Option<String>,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }

    /// `createdBy` of keys this session creates: its email if present, otherwise its subject.
    pub fn actor(&self) -> String {
        self.email.clone().unwrap_or_else(|| self.sub.clone())
    }
}

/// Why a token was refused. Never shown to the client (every refusal is the same 401); it is
/// only for tests and for the log's outcome field.
#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    Algorithm,
    Signature,
    Claims,
    Expired,
    NotYetValid,
}

/// Verifies signature and time claims. `now` is in seconds since the Unix epoch.
pub fn verify(token: &str, secret: &[u8], now: f64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = decode_json(header_b64).ok_or(JwtError::Malformed)?;
    if header.alg != "HS256" || header.crit.is_some() {
        return Err(JwtError::Algorithm);
    }
    let signature = base64url::decode(signature_b64).ok_or(JwtError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtError::Signature)?;
    mac.update(header_b64.as_bytes());
    mac.update(b".");
    mac.update(claims_b64.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;

    let claims: Claims = decode_json(claims_b64).ok_or(JwtError::Claims)?;
    if !claims.exp.is_finite() || claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| !nbf.is_finite() || nbf > now) {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

fn decode_json<T: for<'de> Deserialize<'de>>(segment: &str) -> Option<T> {
    serde_json::from_slice(&base64url::decode(segment)?).ok()
}

/// Signs claims as HS256. In production the CRM issues sessions; this Worker signs one only for
/// the development sign-in of the settings page (off unless DEV_LOGIN is "enabled"), and tests.
pub fn sign<C: Serialize>(claims: &C, secret: &[u8]) -> String {
    let header = base64url::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let json = serde_json::to_vec(claims).expect("claims serialise to JSON");
    let body = base64url::encode(&json);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{header}.{body}").as_bytes());
    format!(
        "{header}.{body}.{}",
        base64url::encode(&mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret";
    const NOW: f64 = 1_700_000_000.0;

    fn claims() -> serde_json::Value {
        json!({"sub": "u1", "tenant": "acme", "exp": NOW + 60.0, "role": "admin", "email": "a@acme.test"})
    }

    #[test]
    fn accepts_a_valid_token() {
        let claims = verify(&sign(&claims(), SECRET), SECRET, NOW).unwrap();
        assert!(claims.is_admin());
        assert_eq!(claims.actor(), "a@acme.test");
        assert_eq!(claims.tenant, "acme");
    }

    #[test]
    fn refuses_bad_signature_wrong_secret_and_other_algorithms() {
        let token = sign(&claims(), SECRET);
        assert_eq!(verify(&token, b"other", NOW), Err(JwtError::Signature));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(verify(&tampered, SECRET, NOW), Err(JwtError::Signature));

        let body = token.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"HS256","crit":["x"]}"#,
        ] {
            let forged = format!("{}.{body}.", base64url::encode(header.as_bytes()));
            assert_eq!(
                verify(&forged, SECRET, NOW),
                Err(JwtError::Algorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn refuses_expired_not_yet_valid_and_incomplete_claims() {
        let mut expired = claims();
        expired["exp"] = json!(NOW - 1.0);
        assert_eq!(
            verify(&sign(&expired, SECRET), SECRET, NOW),
            Err(JwtError::Expired)
        );
        let mut early = claims();
        early["nbf"] = json!(NOW + 30.0);
        assert_eq!(
            verify(&sign(&early, SECRET), SECRET, NOW),
            Err(JwtError::NotYetValid)
        );
        for missing in ["sub", "tenant", "exp"] {
            let mut partial = claims();
            partial.as_object_mut().unwrap().remove(missing);
            assert_eq!(
                verify(&sign(&partial, SECRET), SECRET, NOW),
                Err(JwtError::Claims),
                "{missing}"
            );
        }
    }

    #[test]
    fn refuses_malformed_tokens_without_panicking() {
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "e30.e30.",
            "%%%.e30.AA",
            &"a".repeat(9000),
        ] {
            assert!(verify(bad, SECRET, NOW).is_err(), "{bad}");
        }
    }
}
