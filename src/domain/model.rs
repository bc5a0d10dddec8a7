//! The stored API key and the JSON shapes the API returns (camelCase, RFC 3339 UTC with `Z`).
//! No response type has a field for the key hash, and only `ApiKeyCreatedResponse` has the key.

use super::{
    address::AllowList,
    key::PlainKey,
    request_body::KeyChange,
    scopes::Scopes,
    time::{to_rfc3339, Millis},
};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    pub key_prefix: String,
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub created_at: Millis,
    pub created_by: Option<String>,
    /// None: any client address.
    pub allowed_ips: Option<AllowList>,
}

impl ApiKey {
    /// Active means usable now: not revoked and not past `expiresAt`.
    pub fn is_active(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }

    /// The key as `change` leaves it.
    pub fn changed(&self, change: &KeyChange) -> ApiKey {
        ApiKey {
            name: change.name.clone().unwrap_or_else(|| self.name.clone()),
            scopes: change.scopes.unwrap_or(self.scopes),
            allowed_ips: match &change.allowed_ips {
                Some(list) => list.clone(),
                None => self.allowed_ips.clone(),
            },
            ..self.clone()
        }
    }

    pub fn to_response(&self, now: Millis) -> ApiKeyResponse {
        ApiKeyResponse {
            id: self.id.to_string(),
            key_prefix: self.key_prefix.clone(),
            name: self.name.clone(),
            scopes: self.scopes.to_string(),
            expires_at: self.expires_at.map(to_rfc3339),
            last_used_at: self.last_used_at.map(to_rfc3339),
            is_active: self.is_active(now),
            created_at: to_rfc3339(self.created_at),
            created_by: self.created_by.clone(),
            allowed_ips: self.allowed_ips.as_ref().map(AllowList::entries),
        }
    }

    /// The one response that carries the key: the one that created or rotated it.
    pub fn to_created_response(&self, key: &PlainKey) -> ApiKeyCreatedResponse {
        ApiKeyCreatedResponse {
            id: self.id.to_string(),
            key: key.reveal().to_string(),
            key_prefix: self.key_prefix.clone(),
            name: self.name.clone(),
            scopes: self.scopes.to_string(),
            expires_at: self.expires_at.map(to_rfc3339),
            created_at: to_rfc3339(self.created_at),
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    pub id: String,
    pub key_prefix: String,
    pub name: String,
    pub scopes: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub is_active: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    /// Canonical blocks, or null for any address.
    pub allowed_ips: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreatedResponse {
    pub id: String,
    pub key: String,
    pub key_prefix: String,
    pub name: String,
    pub scopes: String,
    pub expires_at: Option<String>,
    pub created_at: String,
}
