//! What the edge knows about one key secret: either a grant (who the key is and until when it
//! works) or a denial (and, when D1 knows the secret, whose key it is and why it is refused, so
//! that the refusal is counted for that key). KV stores this as JSON; a D1 lookup produces the
//! same thing, so the cache and the database lead to one decision function.

use super::{address::AllowList, scopes::Scopes, tenant::Tenant, time::Millis};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// How long a grant read from D1 is trusted: the bound on how long a revoked key can keep
/// working anywhere when every cache write of its revocation failed (README, "Cache").
pub const GRANT_FRESH_MS: Millis = 300_000;
/// A management call's grant outlives, by a margin longer than any request, every fill that
/// read D1 before the call's change, so that a narrowed scope is never overtaken by one.
pub const MANAGED_GRANT_FRESH_MS: Millis = GRANT_FRESH_MS + 60_000;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "StoredEntry")]
pub enum CacheEntry {
    Grant(Grant),
    /// Unknown, revoked, expired or rotated out. Each of these is final: no later change to D1
    /// can make a denied secret valid again, which is what makes denials safe to cache. `None`
    /// for a secret D1 does not know: the request names no key to count it for.
    Deny(Option<DeniedKey>),
}

/// Whose key a denied secret belongs to, and why it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeniedKey {
    pub key_id: Uuid,
    pub tenant: String,
    pub reason: DenyReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DenyReason {
    Revoked,
    Expired,
    /// A secret that a rotation replaced, once its grace period is over.
    RotatedOut,
}

/// The JSON forms of an entry. Externally tagged (`{"grant":{…}}`, `"deny"`, `{"denyKey":{…}}`):
/// serde reads that in one pass, where an internally tagged enum buffers the whole entry first,
/// on every cache hit. An unattributed denial keeps the bare `"deny"` that entries had before
/// denials named their key, so that a denial written by an older deployment still reads as one
/// (an entry that does not parse counts as absent, and an absent denial would let an older
/// grant through).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum StoredEntry {
    Grant(Grant),
    Deny,
    DenyKey(DeniedKey),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum StoredEntryRef<'a> {
    Grant(&'a Grant),
    Deny,
    DenyKey(&'a DeniedKey),
}

impl From<StoredEntry> for CacheEntry {
    fn from(stored: StoredEntry) -> CacheEntry {
        match stored {
            StoredEntry::Grant(grant) => CacheEntry::Grant(grant),
            StoredEntry::Deny => CacheEntry::Deny(None),
            StoredEntry::DenyKey(key) => CacheEntry::Deny(Some(key)),
        }
    }
}

impl Serialize for CacheEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CacheEntry::Grant(grant) => StoredEntryRef::Grant(grant),
            CacheEntry::Deny(None) => StoredEntryRef::Deny,
            CacheEntry::Deny(Some(key)) => StoredEntryRef::DenyKey(key),
        }
        .serialize(serializer)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub key_id: Uuid,
    pub tenant: String,
    /// Canonical scope list, e.g. `read,write`.
    pub scopes: String,
    pub expires_at: Option<Millis>,
    /// Set on a secret that a rotation replaced with a grace period.
    pub valid_until: Option<Millis>,
    /// After this the entry is stale, whatever KV still holds, and D1 is asked again.
    pub fresh_until: Millis,
    /// The key's allow-list in its stored form (`AllowList`'s `Display`), so that checking the
    /// client address costs no read beyond the entry; absent when any address may use the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<String>,
}

/// One secret of a key as D1 stores it, joined with its key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSecret {
    pub key_id: Uuid,
    pub tenant: String,
    pub scopes: Scopes,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub valid_until: Option<Millis>,
    pub allowed_ips: Option<AllowList>,
}

impl StoredSecret {
    /// Whether a rotation replaced this secret and its grace period is over.
    pub fn is_rotated_out(&self, now: Millis) -> bool {
        past(self.valid_until, now)
    }
}

impl CacheEntry {
    /// The entry for a secret found in (or missing from) D1 by a validation at `now`.
    pub fn from_stored(secret: Option<&StoredSecret>, now: Millis) -> CacheEntry {
        CacheEntry::from_d1(secret, now, now + GRANT_FRESH_MS)
    }

    /// The entry a management call writes for a secret after its change at `now`.
    pub fn from_stored_managed(secret: Option<&StoredSecret>, now: Millis) -> CacheEntry {
        CacheEntry::from_d1(secret, now, now + MANAGED_GRANT_FRESH_MS)
    }

    fn from_d1(secret: Option<&StoredSecret>, now: Millis, fresh_until: Millis) -> CacheEntry {
        let Some(s) = secret else {
            return CacheEntry::Deny(None);
        };
        // A revoked key stays revoked whatever its dates say.
        let reason = if s.revoked_at.is_some() {
            Some(DenyReason::Revoked)
        } else {
            ended_by_dates(s.expires_at, s.valid_until, now)
        };
        match reason {
            Some(reason) => CacheEntry::Deny(Some(DeniedKey {
                key_id: s.key_id,
                tenant: s.tenant.clone(),
                reason,
            })),
            None => CacheEntry::Grant(Grant {
                key_id: s.key_id,
                tenant: s.tenant.clone(),
                scopes: s.scopes.to_string(),
                expires_at: s.expires_at,
                valid_until: s.valid_until,
                fresh_until,
                allowed_ips: s.allowed_ips.as_ref().map(ToString::to_string),
            }),
        }
    }

    /// A denial is always fresh (it is final); a grant until its `fresh_until`.
    pub fn is_fresh(&self, now: Millis) -> bool {
        match self {
            CacheEntry::Grant(grant) => grant.fresh_until > now,
            CacheEntry::Deny(_) => true,
        }
    }

    pub fn is_deny(&self) -> bool {
        matches!(self, CacheEntry::Deny(_))
    }

    /// Whether this entry lets a request for `tenant` in at `now`. Every failure is the same
    /// `None`: the caller cannot tell, and so cannot reveal, which case it was.
    pub fn admit(&self, tenant: &Tenant, now: Millis) -> Option<Admitted> {
        let CacheEntry::Grant(grant) = self else {
            return None;
        };
        if grant.tenant != tenant.as_str()
            || grant.fresh_until <= now
            || ended_by_dates(grant.expires_at, grant.valid_until, now).is_some()
        {
            return None;
        }
        // A scope string or an allow-list that does not parse can only come from a corrupted
        // entry: refuse it.
        let scopes = Scopes::parse(&grant.scopes).ok()?;
        let allowed_ips = match &grant.allowed_ips {
            Some(stored) => Some(AllowList::from_canonical(stored)?),
            None => None,
        };
        Some(Admitted {
            key_id: grant.key_id,
            scopes,
            allowed_ips,
        })
    }

    /// For a request this entry does not admit: the key of `tenant` it names, and why it is
    /// refused, so that the refusal is counted for that key. `None` when the secret is unknown,
    /// belongs to another tenant, or the entry is stale: such a request names no key of this
    /// tenant. The answer never changes the response, which is the same 401 in every case.
    pub fn refused_key(&self, tenant: &Tenant, now: Millis) -> Option<RefusedKey> {
        let (key_id, owner, reason) = match self {
            CacheEntry::Deny(Some(denied)) => (denied.key_id, &denied.tenant, denied.reason),
            CacheEntry::Deny(None) => return None,
            // A grant read before its deadline: the key is refused by the deadline alone.
            CacheEntry::Grant(grant) if grant.fresh_until > now => {
                let reason = ended_by_dates(grant.expires_at, grant.valid_until, now)?;
                (grant.key_id, &grant.tenant, reason)
            }
            CacheEntry::Grant(_) => return None,
        };
        (owner == tenant.as_str()).then_some(RefusedKey { key_id, reason })
    }
}

/// A key of the request's tenant that a validation refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedKey {
    pub key_id: Uuid,
    pub reason: DenyReason,
}

/// A valid key of the tenant, before its client address and its scopes are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub key_id: Uuid,
    pub scopes: Scopes,
    /// None: any client address.
    pub allowed_ips: Option<AllowList>,
}

impl Admitted {
    /// Whether the key may be used by a request from `client` (`CF-Connecting-IP`, if any).
    pub fn admits_client(&self, client: Option<&str>) -> bool {
        self.allowed_ips
            .as_ref()
            .is_none_or(|list| list.admits(client))
    }
}

fn past(deadline: Option<Millis>, now: Millis) -> bool {
    deadline.is_some_and(|at| at <= now)
}

/// Why a secret with these dates no longer works at `now`, if it does not: the key's expiry
/// first, then the end a rotation gave the secret.
fn ended_by_dates(
    expires_at: Option<Millis>,
    valid_until: Option<Millis>,
    now: Millis,
) -> Option<DenyReason> {
    if past(expires_at, now) {
        Some(DenyReason::Expired)
    } else if past(valid_until, now) {
        Some(DenyReason::RotatedOut)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_700_000_000_000;

    fn stored() -> StoredSecret {
        StoredSecret {
            key_id: Uuid::from_bytes([1; 16]),
            tenant: "acme".into(),
            scopes: Scopes::parse("read,write").unwrap(),
            expires_at: Some(NOW + 1000),
            revoked_at: None,
            valid_until: None,
            allowed_ips: None,
        }
    }

    fn acme() -> Tenant {
        Tenant::parse("acme").unwrap()
    }

    #[test]
    fn an_active_secret_is_admitted_for_its_own_tenant_only() {
        let entry = CacheEntry::from_stored(Some(&stored()), NOW);
        let admitted = entry.admit(&acme(), NOW).unwrap();
        assert_eq!(admitted.scopes.to_string(), "read,write");
        assert_eq!(entry.admit(&Tenant::parse("globex").unwrap(), NOW), None);
    }

    #[test]
    fn unknown_revoked_expired_and_rotated_out_secrets_are_denied_with_their_key_and_reason() {
        assert_eq!(CacheEntry::from_stored(None, NOW), CacheEntry::Deny(None));
        let revoked = StoredSecret {
            revoked_at: Some(NOW - 1),
            ..stored()
        };
        let expired = StoredSecret {
            expires_at: Some(NOW),
            ..stored()
        };
        let rotated_out = StoredSecret {
            valid_until: Some(NOW - 1),
            ..stored()
        };
        let revoked_and_expired = StoredSecret {
            expires_at: Some(NOW - 5),
            ..revoked.clone()
        };
        for (secret, reason) in [
            (revoked, DenyReason::Revoked),
            (expired, DenyReason::Expired),
            (rotated_out, DenyReason::RotatedOut),
            (revoked_and_expired, DenyReason::Revoked),
        ] {
            let denied = CacheEntry::Deny(Some(DeniedKey {
                key_id: secret.key_id,
                tenant: "acme".into(),
                reason,
            }));
            assert_eq!(
                CacheEntry::from_stored(Some(&secret), NOW),
                denied,
                "{secret:?}"
            );
            assert_eq!(
                CacheEntry::from_stored_managed(Some(&secret), NOW),
                denied,
                "{secret:?}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_key_only_for_its_own_tenant() {
        let id = stored().key_id;
        let revoked = CacheEntry::from_stored(
            Some(&StoredSecret {
                revoked_at: Some(NOW - 1),
                ..stored()
            }),
            NOW,
        );
        let globex = Tenant::parse("globex").unwrap();
        assert_eq!(
            revoked.refused_key(&acme(), NOW),
            Some(RefusedKey {
                key_id: id,
                reason: DenyReason::Revoked
            })
        );
        assert_eq!(revoked.refused_key(&globex, NOW), None);
        assert_eq!(CacheEntry::Deny(None).refused_key(&acme(), NOW), None);
        // A cached grant that reaches its deadlines is refused for them, and says so.
        let grace = StoredSecret {
            valid_until: Some(NOW + 10),
            ..stored()
        };
        let grant = CacheEntry::from_stored(Some(&grace), NOW);
        assert_eq!(grant.refused_key(&acme(), NOW + 9), None);
        let reason = |at| grant.refused_key(&acme(), at).map(|r| r.reason);
        assert_eq!(reason(NOW + 10), Some(DenyReason::RotatedOut));
        assert_eq!(reason(NOW + 1000), Some(DenyReason::Expired));
        assert_eq!(grant.refused_key(&globex, NOW + 1000), None);
        // A stale grant is no evidence of anything.
        assert_eq!(reason(NOW + GRANT_FRESH_MS), None);
    }

    #[test]
    fn a_cached_grant_stops_working_at_its_deadlines() {
        let grace = StoredSecret {
            valid_until: Some(NOW + 10),
            ..stored()
        };
        let entry = CacheEntry::from_stored(Some(&grace), NOW);
        assert!(entry.admit(&acme(), NOW + 9).is_some());
        assert!(entry.admit(&acme(), NOW + 10).is_none());
        let entry = CacheEntry::from_stored(Some(&stored()), NOW);
        assert!(entry.admit(&acme(), NOW + 1000).is_none());
    }

    #[test]
    fn an_allow_list_travels_in_the_grant_and_limits_the_client_addresses() {
        let limited = StoredSecret {
            allowed_ips: AllowList::parse(["203.0.113.0/24", "2001:db8::1"]).ok(),
            ..stored()
        };
        let entry = CacheEntry::from_stored(Some(&limited), NOW);
        let CacheEntry::Grant(grant) = &entry else {
            panic!("an active secret is granted");
        };
        assert_eq!(
            grant.allowed_ips.as_deref(),
            Some("203.0.113.0/24,2001:db8::1/128")
        );
        let admitted = entry.admit(&acme(), NOW).unwrap();
        assert!(admitted.admits_client(Some("203.0.113.9")));
        assert!(admitted.admits_client(Some("2001:db8::1")));
        for outside in [None, Some("198.51.100.1"), Some("2001:db8::2"), Some("")] {
            assert!(!admitted.admits_client(outside), "{outside:?}");
        }
        let anywhere = CacheEntry::from_stored(Some(&stored()), NOW)
            .admit(&acme(), NOW)
            .unwrap();
        assert!(anywhere.admits_client(None) && anywhere.admits_client(Some("198.51.100.1")));
    }

    #[test]
    fn a_grant_whose_allow_list_does_not_parse_admits_no_one() {
        let CacheEntry::Grant(grant) = CacheEntry::from_stored(Some(&stored()), NOW) else {
            panic!("an active secret is granted");
        };
        let corrupted = CacheEntry::Grant(Grant {
            allowed_ips: Some("203.0.113.9/24".into()),
            ..grant
        });
        assert_eq!(corrupted.admit(&acme(), NOW), None);
    }

    #[test]
    fn entries_round_trip_through_json() {
        let limited = StoredSecret {
            allowed_ips: AllowList::parse(["203.0.113.0/24"]).ok(),
            ..stored()
        };
        let revoked = StoredSecret {
            revoked_at: Some(NOW - 1),
            ..stored()
        };
        for entry in [
            CacheEntry::from_stored(Some(&stored()), NOW),
            CacheEntry::from_stored(Some(&limited), NOW),
            CacheEntry::from_stored(Some(&revoked), NOW),
            CacheEntry::Deny(None),
        ] {
            let json = serde_json::to_string(&entry).unwrap();
            assert_eq!(serde_json::from_str::<CacheEntry>(&json).unwrap(), entry);
        }
    }

    /// Denials in KV outlive a deployment: the bare `"deny"` of entries written before denials
    /// named their key must still read as a denial.
    #[test]
    fn a_denial_written_before_denials_named_their_key_still_reads_as_one() {
        assert_eq!(
            serde_json::from_str::<CacheEntry>(r#""deny""#).unwrap(),
            CacheEntry::Deny(None)
        );
        assert_eq!(
            serde_json::to_string(&CacheEntry::Deny(None)).unwrap(),
            r#""deny""#
        );
        let json = serde_json::to_string(&CacheEntry::Deny(Some(DeniedKey {
            key_id: Uuid::from_bytes([1; 16]),
            tenant: "acme".into(),
            reason: DenyReason::Revoked,
        })))
        .unwrap();
        assert_eq!(
            json,
            r#"{"denyKey":{"keyId":"01010101-0101-0101-0101-010101010101","tenant":"acme","reason":"revoked"}}"#
        );
    }
}
