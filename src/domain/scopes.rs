//! Scopes: `read` allows GET, HEAD and OPTIONS on the CRM's routes, `write` every other method,
//! and `admin` manages API keys and implies both.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

const READ: u8 = 1;
const WRITE: u8 = 2;
const ADMIN: u8 = 4;
/// The canonical order of the stored form.
const NAMES: [(u8, &str); 3] = [(READ, "read"), (WRITE, "write"), (ADMIN, "admin")];

#[derive(Debug, PartialEq, Eq)]
pub enum ScopeError {
    Empty,
    Unknown(String),
}

impl Scopes {
    pub const READ: Scopes = Scopes(READ);

    /// Parses a comma-separated list: spaces around names are trimmed and duplicates dropped.
    /// An empty list, or an empty item as in `read,,write`, is refused rather than guessed at.
    pub fn parse(list: &str) -> Result<Scopes, ScopeError> {
        let mut bits = 0;
        for item in list.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(ScopeError::Empty);
            }
            let (bit, _) = NAMES
                .iter()
                .find(|(_, name)| *name == item)
                .ok_or_else(|| ScopeError::Unknown(item.chars().take(32).collect()))?;
            bits |= bit;
        }
        Ok(Scopes(bits))
    }

    pub fn is_admin(self) -> bool {
        self.0 & ADMIN != 0
    }

    /// Whether these scopes allow an HTTP method on a CRM route.
    pub fn allows_method(self, method: &str) -> bool {
        self.allows(Needed::for_request(method, []))
    }

    /// Whether these scopes grant what a CRM request needs.
    pub fn allows(self, needed: Needed) -> bool {
        let bit = match needed {
            Needed::Read => READ,
            Needed::Write => WRITE,
        };
        self.0 & (bit | ADMIN) != 0
    }

    /// The scope a method needs, for the 403 message.
    pub fn needed_for_method(method: &str) -> &'static str {
        Needed::for_request(method, []).as_str()
    }
}

/// The scope a request to a CRM route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Needed {
    Read,
    Write,
}

/// Headers by which a client asks the origin's framework to treat a request as another method
/// (Rails, Laravel, Express's method-override, ASP.NET and others honour one of them).
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
];

impl Needed {
    /// The most demanding of what the method and every overriding method need. Only GET, HEAD
    /// and OPTIONS are reads; any other method, extension methods and values that are not a
    /// method at all included, needs write. Override values are compared without regard to
    /// case, since frameworks upper-case them before use.
    pub fn for_request<'a>(method: &str, overrides: impl IntoIterator<Item = &'a str>) -> Needed {
        let needs = |method: &str| {
            let method = method.trim();
            if ["GET", "HEAD", "OPTIONS"]
                .iter()
                .any(|safe| safe.eq_ignore_ascii_case(method))
            {
                Needed::Read
            } else {
                Needed::Write
            }
        };
        overrides
            .into_iter()
            .map(needs)
            .fold(needs(method), Needed::max)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Needed::Read => "read",
            Needed::Write => "write",
        }
    }
}

/// The canonical form of each set of scopes, by its bits: `read,write,admin` order, no spaces.
/// A table, since the gateway writes a key's scopes into every request it forwards.
const CANONICAL: [&str; 8] = [
    "",
    "read",
    "write",
    "read,write",
    "admin",
    "read,admin",
    "write,admin",
    "read,write,admin",
];

impl Scopes {
    /// The canonical form: `read,write,admin` order, no spaces.
    pub fn as_str(self) -> &'static str {
        CANONICAL[usize::from(self.0 & (READ | WRITE | ADMIN))]
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_table_lists_each_set_in_order() {
        for bits in 1..8u8 {
            let expected: Vec<&str> = NAMES
                .iter()
                .filter(|(bit, _)| bits & bit != 0)
                .map(|&(_, name)| name)
                .collect();
            let scopes = Scopes(bits);
            assert_eq!(scopes.as_str(), expected.join(","));
            assert_eq!(Scopes::parse(scopes.as_str()), Ok(scopes));
        }
    }

    #[test]
    fn canonicalises_order_spaces_and_duplicates() {
        let cases = [
            ("read", "read"),
            ("admin, read", "read,admin"),
            (" write ,read,write", "read,write"),
            ("admin,write,read,admin", "read,write,admin"),
        ];
        for (input, canonical) in cases {
            assert_eq!(
                Scopes::parse(input).unwrap().to_string(),
                canonical,
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_empty_and_unknown_scopes() {
        assert_eq!(Scopes::parse(""), Err(ScopeError::Empty));
        assert_eq!(Scopes::parse(" "), Err(ScopeError::Empty));
        assert_eq!(Scopes::parse("read,,write"), Err(ScopeError::Empty));
        assert_eq!(
            Scopes::parse("read,owner"),
            Err(ScopeError::Unknown("owner".into()))
        );
        assert_eq!(
            Scopes::parse("READ"),
            Err(ScopeError::Unknown("READ".into()))
        );
    }

    #[test]
    fn read_allows_safe_methods_write_the_rest_admin_all() {
        let read = Scopes::parse("read").unwrap();
        let write = Scopes::parse("write").unwrap();
        let admin = Scopes::parse("admin").unwrap();
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert!(
                read.allows_method(method)
                    && !write.allows_method(method)
                    && admin.allows_method(method)
            );
        }
        for method in ["POST", "PUT", "PATCH", "DELETE", "PURGE"] {
            assert!(
                !read.allows_method(method)
                    && write.allows_method(method)
                    && admin.allows_method(method)
            );
        }
        assert!(admin.is_admin() && !Scopes::parse("read,write").unwrap().is_admin());
    }

    #[test]
    fn the_most_demanding_of_method_and_overrides_decides() {
        let cases: [(&str, &[&str], Needed); 8] = [
            ("GET", &[], Needed::Read),
            ("GET", &["GET"], Needed::Read),
            ("GET", &["DELETE"], Needed::Write),
            ("GET", &["delete"], Needed::Write),
            ("HEAD", &["get", "PUT"], Needed::Write),
            ("POST", &["GET"], Needed::Write),
            ("GET", &["GET, DELETE"], Needed::Write),
            ("OPTIONS", &[" options "], Needed::Read),
        ];
        for (method, overrides, needed) in cases {
            assert_eq!(
                Needed::for_request(method, overrides.iter().copied()),
                needed,
                "{method} {overrides:?}"
            );
        }
        let read = Scopes::parse("read").unwrap();
        assert!(!read.allows(Needed::for_request("GET", ["DELETE"])));
        assert!(Scopes::parse("write").unwrap().allows(Needed::Write));
    }
}
