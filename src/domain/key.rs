//! API key secrets. `PlainKey` exists only between generation (or the `X-Api-Key` header) and
//! the one response that reveals it; storage and cache only ever see `KeyHash`. Neither type
//! prints its value through `Debug`, so a `{:?}` in a log line cannot leak it.

use sha2::{Digest, Sha256};
use std::fmt;

pub const KEY_MARKER: &str = "rk_live_";
const SECRET_HEX_LEN: usize = 32;
pub const KEY_LEN: usize = KEY_MARKER.len() + SECRET_HEX_LEN;
/// `keyPrefix` is this many leading characters of the key, e.g. `rk_live_7f3a`.
pub const PREFIX_LEN: usize = 12;

pub struct PlainKey(String);

impl PlainKey {
    /// A new key from 16 bytes of the platform CSPRNG.
    pub fn generate() -> Result<PlainKey, getrandom::Error> {
        let mut secret = [0u8; SECRET_HEX_LEN / 2];
        getrandom::fill(&mut secret)?;
        Ok(PlainKey(format!("{KEY_MARKER}{}", hex::encode(secret))))
    }

    /// Accepts exactly `rk_live_` followed by 32 lowercase hex characters.
    pub fn parse(text: &str) -> Option<PlainKey> {
        let secret = text.strip_prefix(KEY_MARKER)?;
        let valid = secret.len() == SECRET_HEX_LEN
            && secret
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| PlainKey(text.to_string()))
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    pub fn prefix(&self) -> String {
        self.0[..PREFIX_LEN].to_string()
    }

    /// The key itself, for the one response that reveals it.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainKey(REDACTED)")
    }
}

/// SHA-256 of the key, as lowercase hex: the only form in which D1 stores a key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn from_stored(hex: String) -> KeyHash {
        KeyHash(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The KV name of this hash's cache entry is a further hash, so that a listing of the KV
    /// namespace does not even reveal the hashes that D1 stores. The version names the entries'
    /// format (v2: externally tagged), so that a deployment never reads another's entries.
    pub fn cache_id(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(b"rally-edge-keys/kv/v2:");
        digest.update(self.0.as_bytes());
        hex::encode(digest.finalize())
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(REDACTED)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_format_and_differ() {
        let a = PlainKey::generate().unwrap();
        let b = PlainKey::generate().unwrap();
        assert!(PlainKey::parse(a.reveal()).is_some());
        assert_eq!(a.reveal().len(), KEY_LEN);
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.prefix(), a.reveal()[..12]);
        assert!(a.prefix().starts_with("rk_live_"));
    }

    #[test]
    fn parse_refuses_anything_but_the_exact_format() {
        let good = "rk_live_0123456789abcdef0123456789abcdef";
        assert!(PlainKey::parse(good).is_some());
        for bad in [
            "",
            "rk_live_",
            "rk_test_0123456789abcdef0123456789abcdef",
            "rk_live_0123456789ABCDEF0123456789abcdef",
            "rk_live_0123456789abcdef0123456789abcde",
            "rk_live_0123456789abcdef0123456789abcdef0",
            "rk_live_0123456789abcdef0123456789abcdeg",
            " rk_live_0123456789abcdef0123456789abcdef",
            "rk_live_0123456789abcdef0123456789abcdé",
        ] {
            assert!(PlainKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hash_is_sha256_hex_and_debug_never_shows_secrets() {
        let key = PlainKey::parse("rk_live_0123456789abcdef0123456789abcdef").unwrap();
        let hash = key.hash();
        assert_eq!(hash.as_str().len(), 64);
        assert_eq!(hash.as_str(), hex::encode(Sha256::digest(key.reveal())));
        assert_ne!(hash.cache_id(), hash.as_str());
        let printed = format!("{key:?} {hash:?}");
        assert!(!printed.contains("0123456789abcdef") && !printed.contains(hash.as_str()));
    }
}
