//! List cursors: the position after the last item of a page, `(createdAt, id)` of a key or
//! `(at, id)` of an audit event, in the list's newest-first order. They are opaque to clients and
//! carry a MAC bound to the tenant and to the list, so a tampered or foreign cursor, or one of the
//! other list, is refused with 400 instead of being trusted.

use super::{base64url, tenant::Tenant, time::Millis};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

const MAC_LEN: usize = 16;
const PAYLOAD_LEN: usize = 8 + 16;

/// The list a cursor pages through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    ApiKeys,
    AuditEvents,
}

impl List {
    /// The MAC's domain separation. The key list's is the label it had before there were two
    /// lists, so that its cursors stay valid across the change.
    fn label(self) -> &'static [u8] {
        match self {
            List::ApiKeys => b"rally-edge-keys/cursor/v1:",
            List::AuditEvents => b"rally-edge-keys/audit-events-cursor/v1:",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Millis,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self, list: List, tenant: &Tenant, key: &[u8]) -> String {
        let mut bytes = self.payload().to_vec();
        bytes.extend_from_slice(
            &mac(list, tenant, key, &self.payload())
                .finalize()
                .into_bytes()[..MAC_LEN],
        );
        base64url::encode(&bytes)
    }

    pub fn decode(text: &str, list: List, tenant: &Tenant, key: &[u8]) -> Option<Cursor> {
        let bytes = base64url::decode(text)?;
        if bytes.len() != PAYLOAD_LEN + MAC_LEN {
            return None;
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        // verify_truncated_left compares in constant time.
        mac(list, tenant, key, payload)
            .verify_truncated_left(tag)
            .ok()?;
        Some(Cursor {
            created_at: Millis::from_be_bytes(payload[..8].try_into().ok()?),
            id: Uuid::from_slice(&payload[8..]).ok()?,
        })
    }

    fn payload(&self) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        out[..8].copy_from_slice(&self.created_at.to_be_bytes());
        out[8..].copy_from_slice(self.id.as_bytes());
        out
    }
}

fn mac(list: List, tenant: &Tenant, key: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(list.label());
    mac.update(tenant.as_str().as_bytes());
    mac.update(b":");
    mac.update(payload);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> Tenant {
        Tenant::parse(name).unwrap()
    }

    #[test]
    fn round_trips_and_refuses_tampering_other_tenants_and_other_keys() {
        let cursor = Cursor {
            created_at: 1_700_000_000_123,
            id: Uuid::from_bytes([7; 16]),
        };
        let text = cursor.encode(List::ApiKeys, &tenant("acme"), b"k");
        let decode = |text: &str, tenant: &str, key: &[u8]| {
            Cursor::decode(text, List::ApiKeys, &self::tenant(tenant), key)
        };
        assert_eq!(decode(&text, "acme", b"k"), Some(cursor));
        assert_eq!(decode(&text, "globex", b"k"), None);
        assert_eq!(decode(&text, "acme", b"other"), None);
        for i in 0..text.len() {
            let mut chars: Vec<char> = text.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let tampered: String = chars.into_iter().collect();
            assert_eq!(decode(&tampered, "acme", b"k"), None, "position {i}");
        }
        for bad in ["", "x", "AAAA", &text[1..], &format!("{text}AA")] {
            assert_eq!(decode(bad, "acme", b"k"), None);
        }
    }

    #[test]
    fn a_cursor_of_one_list_is_refused_by_the_other() {
        let cursor = Cursor {
            created_at: 1_700_000_000_123,
            id: Uuid::from_bytes([7; 16]),
        };
        let acme = tenant("acme");
        for (list, other) in [
            (List::ApiKeys, List::AuditEvents),
            (List::AuditEvents, List::ApiKeys),
        ] {
            let text = cursor.encode(list, &acme, b"k");
            assert_eq!(Cursor::decode(&text, list, &acme, b"k"), Some(cursor));
            assert_eq!(Cursor::decode(&text, other, &acme, b"k"), None);
        }
    }
}
