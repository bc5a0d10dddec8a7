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
        let needed = if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            READ
        } else {
            WRITE
        };
        self.0 & (needed | ADMIN) != 0
    }

    /// The scope a method needs, for the 403 message.
    pub fn needed_for_method(method: &str) -> &'static str {
        if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            "read"
        } else {
            "write"
        }
    }
}

impl fmt::Display for Scopes {
    /// The canonical form: `read,write,admin` order, no spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
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
}
