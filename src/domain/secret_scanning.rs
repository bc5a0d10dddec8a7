//! GitHub's secret-scanning partner protocol, the parts that are pure: the alert body, the public
//! key list, the signature's encoding, and the answer. The signature itself is verified by the
//! runtime's Web Crypto (ECDSA P-256 with SHA-256).

use super::base64url;
use serde::{Deserialize, Serialize};

/// An alert with more tokens than this is refused (413): each token may need a D1 lookup and a
/// revocation, and a request's work must stay bounded. GitHub sends far fewer at once.
pub const MAX_TOKENS: usize = 1000;
/// The alert body limit (413 beyond).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One reported token. `url` and `source` say where it was found.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReportedToken {
    pub token: String,
    #[serde(rename = "type")]
    pub token_type: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertError {
    /// Not a JSON array of `{token, type, url, source}`.
    Malformed,
    /// More than `MAX_TOKENS` tokens.
    TooMany,
}

/// Parses an alert body: a JSON array of reported tokens.
pub fn parse_alert(body: &[u8]) -> Result<Vec<ReportedToken>, AlertError> {
    let tokens: Vec<ReportedToken> =
        serde_json::from_slice(body).map_err(|_| AlertError::Malformed)?;
    if tokens.len() > MAX_TOKENS {
        return Err(AlertError::TooMany);
    }
    Ok(tokens)
}

/// The verdict on one token, in the answer GitHub expects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    /// SHA-256 of the token, hex: the token itself never appears in an answer.
    pub token_hash: String,
    pub token_type: String,
    /// `true_positive` when the token is or was one of our keys, `false_positive` otherwise.
    pub label: &'static str,
}

impl Label {
    pub fn new(token_hash: String, token_type: &str, ours: bool) -> Label {
        Label {
            token_hash,
            token_type: token_type.chars().take(128).collect(),
            label: if ours {
                "true_positive"
            } else {
                "false_positive"
            },
        }
    }
}

/// `{"public_keys": [{"key_identifier", "key", "is_current"}]}` as GitHub publishes it.
#[derive(Debug, Deserialize)]
pub struct KeyList {
    pub public_keys: Vec<PublicKey>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PublicKey {
    pub key_identifier: String,
    /// PEM, `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    pub key: String,
    #[serde(default)]
    pub is_current: bool,
}

impl KeyList {
    pub fn parse(text: &str) -> Option<KeyList> {
        serde_json::from_str(text).ok()
    }

    pub fn find(&self, key_identifier: &str) -> Option<&PublicKey> {
        self.public_keys
            .iter()
            .find(|key| key.key_identifier == key_identifier)
    }
}

/// The DER bytes of a PEM block (`-----BEGIN …-----`, base64 lines, `-----END …-----`).
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .collect();
    standard_base64(&body)
}

/// Standard base64 (RFC 4648 §4, padded or not) as GitHub sends signatures and keys.
pub fn standard_base64(text: &str) -> Option<Vec<u8>> {
    let url_safe: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '-' | '_' => '!', // not standard base64: make it fail
            c => c,
        })
        .collect();
    base64url::decode(&url_safe)
}

/// An ECDSA signature in DER (`SEQUENCE { INTEGER r, INTEGER s }`) as Web Crypto wants it for
/// P-256: r and s as 32 big-endian bytes each.
pub fn der_signature_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    let (tag, rest) = der.split_first()?;
    if *tag != 0x30 {
        return None;
    }
    let (length, rest) = der_length(rest)?;
    if length != rest.len() {
        return None;
    }
    let (r, rest) = der_integer(rest)?;
    let (s, rest) = der_integer(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let mut raw = [0u8; 64];
    for (value, at) in [(r, 0), (s, 32)] {
        raw[at + 32 - value.len()..at + 32].copy_from_slice(value);
    }
    Some(raw)
}

/// A DER length (short form, or long form of one byte, all an ECDSA P-256 signature needs).
fn der_length(bytes: &[u8]) -> Option<(usize, &[u8])> {
    match bytes.split_first()? {
        (&n, rest) if n < 0x80 => Some((n as usize, rest)),
        (0x81, rest) => {
            let (&n, rest) = rest.split_first()?;
            (n >= 0x80).then_some((n as usize, rest))
        }
        _ => None,
    }
}

/// A positive DER INTEGER of at most 32 significant bytes, without its sign byte.
fn der_integer(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, rest) = bytes.split_first()?;
    if *tag != 0x02 {
        return None;
    }
    let (length, rest) = der_length(rest)?;
    if length == 0 || length > rest.len() {
        return None;
    }
    let (value, rest) = rest.split_at(length);
    let value = match value {
        [0, next, ..] if *next >= 0x80 => &value[1..],
        [first, ..] if *first >= 0x80 => return None, // negative
        _ => value,
    };
    (value.len() <= 32).then_some((value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_an_array_of_reported_tokens() {
        let body = br#"[{"token":"rk_live_0123","type":"rally_api_key","url":"https://github.com/o/r/blob/x/.env","source":"content"},{"token":"x","type":"t"}]"#;
        let tokens = parse_alert(body).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].source.as_deref(), Some("content"));
        assert_eq!(tokens[1].url, None);
        for bad in [&b"{}"[..], b"[{\"type\":\"t\"}]", b"not json", b"", b"[1]"] {
            assert_eq!(parse_alert(bad), Err(AlertError::Malformed));
        }
        let many = format!(
            "[{}]",
            vec![r#"{"token":"a","type":"t"}"#; MAX_TOKENS + 1].join(",")
        );
        assert_eq!(parse_alert(many.as_bytes()), Err(AlertError::TooMany));
    }

    #[test]
    fn der_signatures_become_raw_r_and_s() {
        // r with a sign byte (33 bytes), s short (31 bytes): both normalised to 32.
        let mut der = vec![0x30, 0x44, 0x02, 0x21, 0x00];
        der.extend([0x80; 32]);
        der.extend([0x02, 0x1f]);
        der.extend([0x11; 31]);
        der[1] = (der.len() - 2) as u8;
        let raw = der_signature_to_raw(&der).unwrap();
        assert_eq!(&raw[..32], &[0x80; 32]);
        assert_eq!(raw[32], 0);
        assert_eq!(&raw[33..], &[0x11; 31]);
        for bad in [
            &b""[..],
            &[0x31, 0x00],
            &[0x30, 0x03, 0x02, 0x01, 0x01],
            &[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01],
        ] {
            assert_eq!(der_signature_to_raw(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pem_and_standard_base64_decode() {
        let pem = "-----BEGIN PUBLIC KEY-----\nZm9v\nYmFy\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem_to_der(pem).unwrap(), b"foobar");
        assert_eq!(standard_base64("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(standard_base64("-_8"), None);
    }

    #[test]
    fn labels_never_carry_the_token() {
        let label = Label::new("ab".repeat(32), "rally_api_key", true);
        let json = serde_json::to_string(&label).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"token_hash":"{}","token_type":"rally_api_key","label":"true_positive"}}"#,
                "ab".repeat(32)
            )
        );
    }
}
