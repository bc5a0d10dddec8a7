//! The Worker's configuration, named and parsed in one place. Every binding, var and secret the
//! service reads is listed here (the README's configuration table, in code); nothing else in the
//! crate looks one up by name. It is parsed once per isolate, since the runtime's `env` lives as
//! long as the isolate, and secrets are held in a type that never prints.

use crate::domain::identity::SigningKey;
use std::fmt;

/// The names in wrangler.toml and in `wrangler secret put`.
pub mod names {
    /// D1: the source of truth.
    pub const DB: &str = "DB";
    /// KV: the validation cache.
    pub const API_KEY_CACHE: &str = "API_KEY_CACHE";
    /// Rate Limiting: failed authentication per client IP.
    pub const AUTH_FAILURE_LIMITER: &str = "AUTH_FAILURE_LIMITER";
    /// Queue producer: usage counts, consumed by this same Worker.
    pub const USAGE_QUEUE: &str = "USAGE_QUEUE";
    /// Static assets: the settings page.
    pub const ASSETS: &str = "ASSETS";
    /// Var: the zone whose subdomains are tenants.
    pub const ROOT_DOMAIN: &str = "ROOT_DOMAIN";
    /// Var: the CRM origin that admitted requests are forwarded to.
    pub const ORIGIN_URL: &str = "ORIGIN_URL";
    /// Var: where GitHub's secret-scanning public keys are published.
    pub const SECRET_SCANNING_KEYS_URL: &str = "SECRET_SCANNING_KEYS_URL";
    /// Var, development only: `enabled` turns on the settings page's dev sign-in.
    pub const DEV_LOGIN: &str = "DEV_LOGIN";
    /// Secret: HS256 key of CRM sessions and of the list cursors' MAC.
    pub const JWT_SECRET: &str = "JWT_SECRET";
    /// Secret: the Ed25519 private JWK that signs identity assertions.
    pub const IDENTITY_SIGNING_KEY: &str = "IDENTITY_SIGNING_KEY";
    /// Secret, optional: the previous signing key, still published during a rotation.
    pub const IDENTITY_SIGNING_KEY_PREVIOUS: &str = "IDENTITY_SIGNING_KEY_PREVIOUS";
}

/// What the log says of a binding this deployment lacks (the response says only 503).
pub fn missing_binding(name: &str) -> String {
    format!("binding {name} is missing")
}

/// A secret value. `Debug` prints `Secret(REDACTED)`, so that no log line or panic message can
/// carry it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: &str) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

/// `ORIGIN_URL`, checked once: an http(s) URL with a host, and possibly a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl {
    /// Without a trailing `/`.
    base: String,
    /// Length of `scheme://host[:port]` within `base`.
    origin_len: usize,
}

impl OriginUrl {
    pub fn parse(text: &str) -> Option<OriginUrl> {
        let base = text.trim().trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))?;
        let host_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if host_len == 0 || rest[host_len..].contains(['?', '#']) {
            return None;
        }
        Some(OriginUrl {
            base: base.to_string(),
            origin_len: base.len() - rest.len() + host_len,
        })
    }

    /// `scheme://host[:port]`, without the path prefix.
    pub fn origin(&self) -> &str {
        &self.base[..self.origin_len]
    }

    /// The URL a request is forwarded to: the base joined with the request's path and query,
    /// both kept exactly as the client sent them.
    pub fn join(&self, path: &str, query: Option<&str>) -> String {
        match query {
            Some(query) => format!("{}{path}?{query}", self.base),
            None => format!("{}{path}", self.base),
        }
    }
}

/// The vars and secrets, parsed. The bindings are held beside it by the Worker glue.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub root_domain: String,
    /// None when unset or invalid: forwarding then answers `503 origin_not_configured`.
    pub origin: Option<OriginUrl>,
    pub dev_login: bool,
    /// None when unset: secret-scanning alerts then cannot be verified, and are refused (401).
    pub secret_scanning_keys_url: Option<String>,
    jwt_secret: Option<Secret>,
    /// None when unset or unusable: keyed requests then get `503 identity_not_configured`.
    pub identity: Option<SigningKey>,
    pub identity_previous: Option<SigningKey>,
}

impl Config {
    /// Reads every var and secret through `lookup`; an empty value counts as unset.
    pub fn read(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let value = |name| lookup(name).filter(|v| !v.is_empty());
        Config {
            root_domain: value(names::ROOT_DOMAIN).unwrap_or_default(),
            origin: value(names::ORIGIN_URL).and_then(|v| OriginUrl::parse(&v)),
            dev_login: value(names::DEV_LOGIN).as_deref() == Some("enabled"),
            secret_scanning_keys_url: value(names::SECRET_SCANNING_KEYS_URL)
                .filter(|url| url.starts_with("https://") || url.starts_with("http://")),
            jwt_secret: value(names::JWT_SECRET).map(|v| Secret::new(&v)),
            identity: value(names::IDENTITY_SIGNING_KEY).and_then(|v| SigningKey::parse(&v)),
            identity_previous: value(names::IDENTITY_SIGNING_KEY_PREVIOUS)
                .and_then(|v| SigningKey::parse(&v)),
        }
    }

    pub fn jwt_secret(&self) -> Option<&Secret> {
        self.jwt_secret.as_ref()
    }

    /// The keys the JWK Set publishes: the current one, then the previous one.
    pub fn published_keys(&self) -> Vec<&SigningKey> {
        self.identity
            .iter()
            .chain(self.identity_previous.iter())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::read(|name| map.get(name).cloned())
    }

    #[test]
    fn secrets_never_print() {
        let config = config(&[(names::JWT_SECRET, "hunter2-very-secret")]);
        assert_eq!(config.jwt_secret().unwrap().expose(), "hunter2-very-secret");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(format!("{config:?}").contains("REDACTED"));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[(names::JWT_SECRET, ""), (names::ROOT_DOMAIN, "rallycrm.io")]);
        assert_eq!(config.jwt_secret(), None);
        assert_eq!(config.root_domain, "rallycrm.io");
    }

    #[test]
    fn dev_login_is_off_unless_explicitly_enabled() {
        let dev_login = |var: Option<&str>| match var {
            Some(value) => config(&[(names::DEV_LOGIN, value)]).dev_login,
            None => config(&[]).dev_login,
        };
        for off in [None, Some(""), Some("true"), Some("1"), Some("Enabled")] {
            assert!(!dev_login(off), "{off:?}");
        }
        assert!(dev_login(Some("enabled")));
    }

    #[test]
    fn origin_url_is_checked_once_and_joins_path_and_query() {
        let origin = OriginUrl::parse("https://origin.rallycrm.io/crm/").unwrap();
        assert_eq!(origin.origin(), "https://origin.rallycrm.io");
        assert_eq!(
            origin.join("/contacts", Some("a=1&b")),
            "https://origin.rallycrm.io/crm/contacts?a=1&b"
        );
        let local = OriginUrl::parse("http://127.0.0.1:8788").unwrap();
        assert_eq!(local.origin(), "http://127.0.0.1:8788");
        assert_eq!(local.join("/", None), "http://127.0.0.1:8788/");
        for bad in [
            "",
            "origin.rallycrm.io",
            "ftp://x",
            "https://",
            "https:///path",
            "https://x/?q",
        ] {
            assert_eq!(OriginUrl::parse(bad), None, "{bad:?}");
        }
    }
}
