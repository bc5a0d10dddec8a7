//! The audit log: one event per change to a key, written by the store in the same transaction as
//! the change (`service::KeyStore`). An event names who made the change, from which address, and
//! what changed. It is built only from the fields below, so that no event can hold a key, a key
//! hash or a token: the secret's public prefix is the most of it an event shows.

use super::{
    address::AllowList,
    model::ApiKey,
    time::{to_rfc3339, Millis},
};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::net::IpAddr;
use uuid::Uuid;

/// What happened to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Created,
    Updated,
    Rotated,
    Revoked,
    /// Revoked because the key was reported leaked.
    Leaked,
}

impl AuditAction {
    const ALL: [AuditAction; 5] = [
        AuditAction::Created,
        AuditAction::Updated,
        AuditAction::Rotated,
        AuditAction::Revoked,
        AuditAction::Leaked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Created => "api_key.created",
            AuditAction::Updated => "api_key.updated",
            AuditAction::Rotated => "api_key.rotated",
            AuditAction::Revoked => "api_key.revoked",
            AuditAction::Leaked => "api_key.leaked",
        }
    }

    pub fn parse(text: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// What changed, in the shape of its action (see the constructors below): a JSON object, kept
/// as its text from construction to storage and from storage to the response. The wasm carries
/// no `serde_json::Value` (its tree, map and float printing), as `json_object` explains.
#[derive(Debug, Clone)]
pub struct Details(Box<RawValue>);

impl Details {
    /// `api_key.revoked`: nothing more to say.
    pub fn none() -> Details {
        Details::from_text("{}".into())
    }

    pub fn is_empty(&self) -> bool {
        self.as_str() == "{}"
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Text read back from storage; None unless it is JSON.
    pub fn from_stored(text: String) -> Option<Details> {
        RawValue::from_string(text).ok().map(Details)
    }

    /// Only for JSON this module wrote.
    fn from_text(text: String) -> Details {
        Details(RawValue::from_string(text).expect("the audit module writes JSON"))
    }

    fn of<T: Serialize>(value: &T) -> Details {
        Details(serde_json::value::to_raw_value(value).expect("details serialise to JSON"))
    }
}

impl PartialEq for Details {
    fn eq(&self, other: &Details) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Details {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Who makes a change: `createdBy`'s rule (the session's email, else its subject; `apikey:{id}`
/// for an admin key), and the client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    /// `ip` is the request's `CF-Connecting-IP`. Cloudflare always sets it to an address, but a
    /// client that reaches the Worker otherwise (locally) may send any text: whatever is not an
    /// IP address is recorded as unknown, and addresses in their canonical form.
    pub fn new(name: String, ip: Option<&str>) -> Actor {
        let ip = ip
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_string());
        Actor { name, ip }
    }
}

/// Which of a tenant's events a listing wants: all, or those of one key, of one action, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub key_id: Option<Uuid>,
    pub action: Option<AuditAction>,
}

impl EventFilter {
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.key_id.is_none_or(|id| event.key_id == id)
            && self.action.is_none_or(|action| event.action == action)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    /// When the request that made the change arrived; the change's own time (`revokedAt`).
    pub at: Millis,
    pub action: AuditAction,
    pub key_id: Uuid,
    pub actor: String,
    pub actor_ip: Option<String>,
    pub details: Details,
}

impl AuditEvent {
    pub fn new(
        id: Uuid,
        at: Millis,
        action: AuditAction,
        key_id: Uuid,
        actor: &Actor,
        details: Details,
    ) -> AuditEvent {
        AuditEvent {
            id,
            at,
            action,
            key_id,
            actor: actor.name.clone(),
            actor_ip: actor.ip.clone(),
            details,
        }
    }

    pub fn to_response(&self) -> AuditEventResponse {
        AuditEventResponse {
            id: self.id.to_string(),
            at: to_rfc3339(self.at),
            action: self.action.as_str(),
            key_id: self.key_id.to_string(),
            actor: self.actor.clone(),
            actor_ip: self.actor_ip.clone(),
            details: self.details.clone(),
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventResponse {
    pub id: String,
    pub at: String,
    pub action: &'static str,
    pub key_id: String,
    pub actor: String,
    pub actor_ip: Option<String>,
    pub details: Details,
}

/// `api_key.created`: the key as it was created, as `ApiKeyResponse` shows those fields.
pub fn created(key: &ApiKey) -> Details {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Created<'a> {
        name: &'a str,
        scopes: String,
        expires_at: Option<String>,
        key_prefix: &'a str,
        allowed_ips: Option<Vec<String>>,
    }
    Details::of(&Created {
        name: &key.name,
        scopes: key.scopes.to_string(),
        expires_at: key.expires_at.map(to_rfc3339),
        key_prefix: &key.key_prefix,
        allowed_ips: allowed_ips(key),
    })
}

/// `api_key.updated`: each field the update changed, as `{"from", "to"}`; empty when it changed
/// nothing. A field the API can change is one `field` line here.
pub fn updated(before: &ApiKey, after: &ApiKey) -> Details {
    Changes::default()
        .field("name", &before.name, &after.name)
        .field(
            "scopes",
            &before.scopes.to_string(),
            &after.scopes.to_string(),
        )
        .field("allowedIps", &allowed_ips(before), &allowed_ips(after))
        .into_details()
}

/// As `ApiKeyResponse` shows the list: canonical entries, or null for any address.
fn allowed_ips(key: &ApiKey) -> Option<Vec<String>> {
    key.allowed_ips.as_ref().map(AllowList::entries)
}

/// `api_key.rotated`: the grace period the old secret got, and the new secret's prefix.
pub fn rotated(grace_seconds: u64, new_prefix: &str) -> Details {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Rotated<'a> {
        grace_period_seconds: u64,
        key_prefix: &'a str,
    }
    Details::of(&Rotated {
        grace_period_seconds: grace_seconds,
        key_prefix: new_prefix,
    })
}

/// `api_key.leaked`: where the key was found, as the secret-scanning report gave it (null for
/// what it left out).
pub fn leaked(url: Option<&str>, source: Option<&str>) -> Details {
    #[derive(Serialize)]
    struct Leaked<'a> {
        url: Option<&'a str>,
        source: Option<&'a str>,
    }
    Details::of(&Leaked { url, source })
}

/// The fields an update changed, each as `"name":{"from":…,"to":…}`.
#[derive(Default)]
struct Changes(Vec<String>);

impl Changes {
    /// `name` is a field name of the API: a plain identifier that needs no escaping.
    fn field<T: Serialize + PartialEq>(mut self, name: &str, from: &T, to: &T) -> Changes {
        if from != to {
            let (from, to) = (Details::of(from), Details::of(to));
            self.0.push(format!(
                r#""{name}":{{"from":{},"to":{}}}"#,
                from.as_str(),
                to.as_str()
            ));
        }
        self
    }

    fn into_details(self) -> Details {
        Details::from_text(format!("{{{}}}", self.0.join(",")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scopes::Scopes;
    use serde_json::{json, Value};

    fn value(details: Details) -> Value {
        serde_json::from_str(details.as_str()).unwrap()
    }

    fn key() -> ApiKey {
        ApiKey {
            id: Uuid::from_bytes([1; 16]),
            key_prefix: "rk_live_7f3a".into(),
            name: "ETL".into(),
            scopes: Scopes::READ,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            created_at: 1_700_000_000_000,
            created_by: Some("admin@acme.test".into()),
            allowed_ips: None,
        }
    }

    #[test]
    fn actions_have_their_documented_names_and_parse_back() {
        let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "api_key.created",
                "api_key.updated",
                "api_key.rotated",
                "api_key.revoked",
                "api_key.leaked"
            ]
        );
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::parse("api_key.deleted"), None);
    }

    #[test]
    fn an_update_names_only_the_changed_fields_with_from_and_to() {
        let before = key();
        let renamed = ApiKey {
            name: "ETL nightly".into(),
            ..key()
        };
        assert_eq!(
            value(updated(&before, &renamed)),
            json!({"name": {"from": "ETL", "to": "ETL nightly"}})
        );
        let both = ApiKey {
            scopes: Scopes::parse("write,read").unwrap(),
            ..renamed
        };
        assert_eq!(
            value(updated(&before, &both)),
            json!({
                "name": {"from": "ETL", "to": "ETL nightly"},
                "scopes": {"from": "read", "to": "read,write"}
            })
        );
        assert!(updated(&before, &key()).is_empty());
        let limited = ApiKey {
            allowed_ips: Some(AllowList::parse(["203.0.113.0/24", "2001:db8::1"]).unwrap()),
            ..key()
        };
        assert_eq!(
            value(updated(&before, &limited)),
            json!({"allowedIps": {"from": null, "to": ["203.0.113.0/24", "2001:db8::1/128"]}})
        );
        assert_eq!(
            value(updated(&limited, &before)),
            json!({"allowedIps": {"from": ["203.0.113.0/24", "2001:db8::1/128"], "to": null}})
        );
    }

    #[test]
    fn creations_rotations_and_leaks_have_their_documented_details() {
        assert_eq!(
            value(created(&key())),
            json!({
                "name": "ETL", "scopes": "read", "expiresAt": null, "keyPrefix": "rk_live_7f3a",
                "allowedIps": null
            })
        );
        let expiring = ApiKey {
            expires_at: Some(1_800_000_000_000),
            ..key()
        };
        assert_eq!(
            value(created(&expiring))["expiresAt"],
            "2027-01-15T08:00:00Z"
        );
        assert_eq!(
            value(leaked(
                Some("https://github.com/o/r/blob/x/.env"),
                Some("content")
            )),
            json!({"url": "https://github.com/o/r/blob/x/.env", "source": "content"})
        );
        assert_eq!(
            value(leaked(None, None)),
            json!({"url": null, "source": null})
        );
        assert_eq!(
            value(rotated(60, "rk_live_9c1e")),
            json!({"gracePeriodSeconds": 60, "keyPrefix": "rk_live_9c1e"})
        );
    }

    #[test]
    fn the_actor_address_is_canonical_or_unknown() {
        let ip = |text| Actor::new("a".into(), text).ip;
        assert_eq!(ip(Some("203.0.113.7")), Some("203.0.113.7".into()));
        assert_eq!(ip(Some("2001:DB8:0:0::1")), Some("2001:db8::1".into()));
        assert_eq!(ip(Some(" 198.51.100.2 ")), Some("198.51.100.2".into()));
        for not_an_address in [
            "",
            "unknown",
            "203.0.113.7, 10.0.0.1",
            "rk_live_0123",
            "::g",
        ] {
            assert_eq!(ip(Some(not_an_address)), None, "{not_an_address:?}");
        }
        assert_eq!(ip(None), None);
    }

    #[test]
    fn the_response_has_the_documented_fields() {
        let event = AuditEvent::new(
            Uuid::from_bytes([2; 16]),
            1_700_000_000_000,
            AuditAction::Rotated,
            Uuid::from_bytes([1; 16]),
            &Actor::new("apikey:x".into(), None),
            rotated(0, "rk_live_9c1e"),
        );
        assert_eq!(
            serde_json::to_value(event.to_response()).unwrap(),
            json!({
                "id": "02020202-0202-0202-0202-020202020202",
                "at": "2023-11-14T22:13:20Z",
                "action": "api_key.rotated",
                "keyId": "01010101-0101-0101-0101-010101010101",
                "actor": "apikey:x",
                "actorIp": null,
                "details": {"gracePeriodSeconds": 0, "keyPrefix": "rk_live_9c1e"}
            })
        );
    }
}
