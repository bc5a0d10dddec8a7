//! The tenant is the first label of the Host: `{tenant}.{ROOT_DOMAIN}`, or `{tenant}.localhost`
//! for local development.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    /// Parses a Host header value. Host names are case-insensitive, so the tenant is lower-cased;
    /// a port is ignored. Anything that is not exactly one valid label under the root domain (or
    /// `localhost`) is refused.
    pub fn from_host(host: &str, root_domain: &str) -> Option<Tenant> {
        let host = host.to_ascii_lowercase();
        let name = strip_port(&host)?;
        let label = [root_domain.to_ascii_lowercase().as_str(), "localhost"]
            .into_iter()
            .filter(|root| !root.is_empty())
            .find_map(|root| name.strip_suffix(root)?.strip_suffix('.'))?;
        Tenant::parse(label)
    }

    /// Whether a Host is this service's at all: the root domain, `localhost`, or any name under
    /// either. Endpoints that serve every tenant (the secret-scanning partner endpoint) accept it.
    pub fn is_service_host(host: &str, root_domain: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let Some(name) = strip_port(&host) else {
            return false;
        };
        [root_domain.to_ascii_lowercase().as_str(), "localhost"]
            .into_iter()
            .filter(|root| !root.is_empty())
            .any(|root| {
                name == root
                    || name
                        .strip_suffix(root)
                        .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
            })
    }

    /// A tenant name: 1 to 63 characters of `a-z`, `0-9` and `-`, not beginning or ending with `-`.
    pub fn parse(label: &str) -> Option<Tenant> {
        let bytes = label.as_bytes();
        let valid = (1..=63).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        valid.then(|| Tenant(label.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn strip_port(host: &str) -> Option<&str> {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(name)
        }
        Some(_) => None,
        None => Some(host),
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tenant({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_hosts_are_the_root_localhost_and_names_under_them() {
        for ours in [
            "rallycrm.io",
            "acme.rallycrm.io",
            "api.rallycrm.io:443",
            "localhost:8787",
            "acme.localhost:8787",
        ] {
            assert!(Tenant::is_service_host(ours, "rallycrm.io"), "{ours}");
        }
        for other in [
            "evilrallycrm.io",
            "rallycrm.io.evil",
            "example.com",
            ".rallycrm.io",
            "",
        ] {
            assert!(!Tenant::is_service_host(other, "rallycrm.io"), "{other}");
        }
    }

    fn tenant(host: &str) -> Option<String> {
        Tenant::from_host(host, "rallycrm.io").map(|t| t.as_str().to_string())
    }

    #[test]
    fn accepts_tenant_subdomains_of_the_root_and_of_localhost() {
        let cases = [
            ("acme.rallycrm.io", "acme"),
            ("ACME.RallyCRM.io", "acme"),
            ("acme.rallycrm.io:443", "acme"),
            ("acme.localhost:8787", "acme"),
            ("a.localhost", "a"),
            ("x-1.rallycrm.io", "x-1"),
        ];
        for (host, expected) in cases {
            assert_eq!(tenant(host).as_deref(), Some(expected), "{host}");
        }
        let longest = format!("{}.rallycrm.io", "a".repeat(63));
        assert_eq!(tenant(&longest), Some("a".repeat(63)));
    }

    #[test]
    fn refuses_every_other_host() {
        let too_long = format!("{}.rallycrm.io", "a".repeat(64));
        let cases = [
            "",
            "rallycrm.io",
            "localhost",
            "localhost:8787",
            ".rallycrm.io",
            "-acme.rallycrm.io",
            "acme-.rallycrm.io",
            "a.b.rallycrm.io",
            "acme.rallycrm.io.evil.com",
            "acme.evilrallycrm.io",
            "acme_1.rallycrm.io",
            "acme.rallycrm.io:",
            "acme.rallycrm.io:80x",
            "127.0.0.1:8787",
            "[::1]:8787",
            "ac me.rallycrm.io",
            "acmé.rallycrm.io",
            &too_long,
        ];
        for host in cases {
            assert_eq!(tenant(host), None, "{host}");
        }
    }
}
