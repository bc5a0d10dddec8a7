//! The request bodies of the management API, parsed from bytes into checked values. Content type
//! and size are the HTTP layer's job; everything about the JSON itself is decided here.

use super::{
    address::{AllowList, BlockError, ListError, MAX_ENTRIES},
    scopes::{ScopeError, Scopes},
    time::{parse_rfc3339, Millis},
};
use crate::json_object::{self, Object, ObjectError, Value};

/// Why a body was refused. `error.rs` maps it to the API's error body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Not JSON, or not a JSON object.
    InvalidJson(&'static str),
    /// A member this body does not accept.
    UnknownField(String),
    /// A member (or, with no field, the body as a whole) breaks a rule.
    Invalid {
        field: Option<&'static str>,
        message: String,
    },
}

impl BodyError {
    fn field(field: &'static str, message: impl Into<String>) -> BodyError {
        BodyError::Invalid {
            field: Some(field),
            message: message.into(),
        }
    }
}

const NAME_MAX_CHARS: usize = 100;
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

#[derive(Debug, PartialEq)]
pub struct NewKey {
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<Millis>,
    /// None: any client address.
    pub allowed_ips: Option<AllowList>,
}

#[derive(Debug, PartialEq)]
pub struct KeyChange {
    pub name: Option<String>,
    pub scopes: Option<Scopes>,
    /// None: unchanged; `Some(None)`: cleared (any address); `Some(Some(list))`: replaced.
    pub allowed_ips: Option<Option<AllowList>>,
}

/// `POST /api/v1/api-keys`: `name` (required), `scopes` (default `read`), `expiresAt`,
/// `allowedIps` (default null: any address).
pub fn parse_create(body: &[u8], now: Millis) -> Result<NewKey, BodyError> {
    let fields = object(body, &["name", "scopes", "expiresAt", "allowedIps"])?;
    let name = match fields.get("name") {
        None | Some(Value::Null) => return Err(BodyError::field("name", "name is required.")),
        Some(value) => parse_name(value)?,
    };
    let scopes = match fields.get("scopes") {
        None | Some(Value::Null) => Scopes::READ,
        Some(value) => parse_scopes(value)?,
    };
    let expires_at = match fields.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_expiry(value, now)?),
    };
    let allowed_ips = match fields.get("allowedIps") {
        None => None,
        Some(value) => parse_allowed_ips(value)?,
    };
    Ok(NewKey {
        name,
        scopes,
        expires_at,
        allowed_ips,
    })
}

/// `PATCH /api/v1/api-keys/{id}`: `name`, `scopes` and/or `allowedIps` (null clears it),
/// nothing else.
pub fn parse_patch(body: &[u8]) -> Result<KeyChange, BodyError> {
    let fields = object(body, &["name", "scopes", "allowedIps"])?;
    let change = KeyChange {
        name: fields.get("name").map(parse_name).transpose()?,
        scopes: fields.get("scopes").map(parse_scopes).transpose()?,
        allowed_ips: fields
            .get("allowedIps")
            .map(parse_allowed_ips)
            .transpose()?,
    };
    if change.name.is_none() && change.scopes.is_none() && change.allowed_ips.is_none() {
        return Err(BodyError::Invalid {
            field: None,
            message: "Send name, scopes and/or allowedIps.".into(),
        });
    }
    Ok(change)
}

/// `POST /api/v1/api-keys/{id}/rotate`: an optional `gracePeriodSeconds`, 0 by default. An
/// empty body means the default.
pub fn parse_rotate(body: &[u8]) -> Result<u64, BodyError> {
    if body.is_empty() {
        return Ok(0);
    }
    let fields = object(body, &["gracePeriodSeconds"])?;
    match fields.get("gracePeriodSeconds") {
        None | Some(Value::Null) => Ok(0),
        Some(value) => value
            .as_u64()
            .filter(|s| *s <= MAX_GRACE_SECONDS)
            .ok_or_else(|| {
                BodyError::field(
                    "gracePeriodSeconds",
                    format!(
                        "gracePeriodSeconds must be a whole number from 0 to {MAX_GRACE_SECONDS}."
                    ),
                )
            }),
    }
}

fn object(body: &[u8], allowed: &[&str]) -> Result<Object, BodyError> {
    json_object::read(body, allowed).map_err(|error| match error {
        ObjectError::NotJson => BodyError::InvalidJson("The body is not valid JSON."),
        ObjectError::NotAnObject => BodyError::InvalidJson("The body must be a JSON object."),
        ObjectError::UnknownMember(name) => BodyError::UnknownField(name),
    })
}

fn parse_name(value: &Value) -> Result<String, BodyError> {
    let name = value
        .as_str()
        .ok_or_else(|| BodyError::field("name", "name must be a string."))?
        .trim();
    let length = name.chars().count();
    if length == 0 || length > NAME_MAX_CHARS {
        return Err(BodyError::field(
            "name",
            format!("name must be 1 to {NAME_MAX_CHARS} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(BodyError::field(
            "name",
            "name must not contain control characters.",
        ));
    }
    Ok(name.to_string())
}

fn parse_scopes(value: &Value) -> Result<Scopes, BodyError> {
    let list = value.as_str().ok_or_else(|| {
        BodyError::field(
            "scopes",
            "scopes must be a comma-separated string of read, write and admin.",
        )
    })?;
    Scopes::parse(list).map_err(|error| match error {
        ScopeError::Empty => BodyError::field(
            "scopes",
            "scopes must name at least one of read, write and admin, with no empty items.",
        ),
        ScopeError::Unknown(scope) => BodyError::field(
            "scopes",
            format!("Unknown scope {scope:?}; use read, write and admin."),
        ),
    })
}

/// Null, or an array of 1 to `MAX_ENTRIES` address or CIDR strings. A refused entry is named
/// by its position from 1 (`Entry 2 of allowedIps: …`), which the settings page turns into the
/// line of its text box; the entry is quoted escaped and cut short, so the message stays one
/// line.
fn parse_allowed_ips(value: &Value) -> Result<Option<AllowList>, BodyError> {
    let invalid = |message: String| BodyError::field("allowedIps", message);
    let items = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        _ => {
            return Err(invalid(
                "allowedIps must be an array of IP addresses or CIDR blocks, or null for any \
                 address."
                    .into(),
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_ENTRIES {
        return Err(invalid(format!(
            "allowedIps must list 1 to {MAX_ENTRIES} IP addresses or CIDR blocks, or be null \
             for any address."
        )));
    }
    let mut entries = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let entry = item.as_str().ok_or_else(|| {
            invalid(format!(
                "Entry {} of allowedIps: not a string; send an IP address or a CIDR block.",
                index + 1
            ))
        })?;
        entries.push(entry.trim());
    }
    AllowList::parse(entries.iter().copied())
        .map(Some)
        .map_err(|error| {
            invalid(match error {
                ListError::Empty | ListError::TooMany => {
                    format!("allowedIps must list 1 to {MAX_ENTRIES} IP addresses or CIDR blocks.")
                }
                ListError::Entry { index, error } => {
                    let quoted = quote(entries[index]);
                    let why = match error {
                        BlockError::NotAnAddress => {
                            "is not an IPv4 or IPv6 address or CIDR block".to_string()
                        }
                        BlockError::BadPrefix { max } => {
                            format!("has a prefix length that is not a number from 0 to {max}")
                        }
                        BlockError::Ipv4Mapped => {
                            "is an IPv4-mapped IPv6 address; write the IPv4 address instead"
                                .to_string()
                        }
                        BlockError::HostBitsSet { network } => {
                            format!("has bits set past its prefix; the block is {network}")
                        }
                    };
                    format!("Entry {} of allowedIps: {quoted} {why}.", index + 1)
                }
            })
        })
}

/// An entry as a message may show it: escaped, and cut to `QUOTED_MAX_CHARS`, so that even
/// an entry of escaped characters (up to 10 characters each) keeps the message within the 512
/// characters the OpenAPI document promises.
fn quote(entry: &str) -> String {
    const QUOTED_MAX_CHARS: usize = 40;
    let mut cut: String = entry.chars().take(QUOTED_MAX_CHARS).collect();
    if cut.len() < entry.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

fn parse_expiry(value: &Value, now: Millis) -> Result<Millis, BodyError> {
    let at = value.as_str().and_then(parse_rfc3339).ok_or_else(|| {
        BodyError::field(
            "expiresAt",
            "expiresAt must be an RFC 3339 timestamp, or null.",
        )
    })?;
    if at <= now {
        return Err(BodyError::field(
            "expiresAt",
            "expiresAt must be in the future.",
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;

    const NOW: Millis = 1_700_000_000_000;

    fn code_and_field(
        result: Result<impl std::fmt::Debug, BodyError>,
    ) -> (&'static str, Option<String>) {
        let error = AppError::from(result.unwrap_err());
        let body: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
        (
            error.code(),
            body["error"]["field"].as_str().map(String::from),
        )
    }

    #[test]
    fn create_applies_defaults_trims_and_canonicalises() {
        let parsed =
            parse_create(br#"{"name": "  Zapier  ", "scopes": "admin, read"}"#, NOW).unwrap();
        assert_eq!(
            parsed,
            NewKey {
                name: "Zapier".into(),
                scopes: Scopes::parse("read,admin").unwrap(),
                expires_at: None,
                allowed_ips: None,
            }
        );
        let parsed = parse_create(
            br#"{"name": "ETL", "expiresAt": "2030-01-01T00:00:00Z", "scopes": null}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(parsed.scopes, Scopes::READ);
        assert_eq!(parsed.expires_at, parse_rfc3339("2030-01-01T00:00:00Z"));
        assert!(parse_create(
            format!(r#"{{"name": "{}"}}"#, "é".repeat(100)).as_bytes(),
            NOW
        )
        .is_ok());
    }

    #[test]
    fn create_refuses_each_kind_of_bad_input() {
        let long = format!(r#"{{"name": "{}"}}"#, "a".repeat(101));
        let cases: Vec<(&[u8], &str, Option<&str>)> = vec![
            (b"{}", "validation_error", Some("name")),
            (br#"{"name": "   "}"#, "validation_error", Some("name")),
            (long.as_bytes(), "validation_error", Some("name")),
            (
                b"{\"name\": \"a\\u0007b\"}",
                "validation_error",
                Some("name"),
            ),
            (br#"{"name": 5}"#, "validation_error", Some("name")),
            (
                br#"{"name": "x", "scopes": "owner"}"#,
                "validation_error",
                Some("scopes"),
            ),
            (
                br#"{"name": "x", "scopes": ""}"#,
                "validation_error",
                Some("scopes"),
            ),
            (
                br#"{"name": "x", "scopes": ["read"]}"#,
                "validation_error",
                Some("scopes"),
            ),
            (
                br#"{"name": "x", "expiresAt": "2001-01-01T00:00:00Z"}"#,
                "validation_error",
                Some("expiresAt"),
            ),
            (
                br#"{"name": "x", "expiresAt": "next week"}"#,
                "validation_error",
                Some("expiresAt"),
            ),
            (
                br#"{"name": "x", "isActive": true}"#,
                "unknown_field",
                Some("isActive"),
            ),
            (br#"{"name": "x""#, "invalid_json", None),
            (b"[]", "invalid_json", None),
            (b"null", "invalid_json", None),
            (b"", "invalid_json", None),
            (b"{\"name\": \"\xff\"}", "invalid_json", None),
        ];
        for (body, code, field) in cases {
            assert_eq!(
                code_and_field(parse_create(body, NOW)),
                (code, field.map(String::from)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_last_of_repeated_members_counts_and_the_first_unknown_is_named() {
        let parsed = parse_create(br#"{"name": "first", "name": "second"}"#, NOW).unwrap();
        assert_eq!(parsed.name, "second");
        assert_eq!(
            code_and_field(parse_create(
                br#"{"name": "x", "zeta": 1, "alpha": 2}"#,
                NOW
            )),
            ("unknown_field", Some("zeta".into()))
        );
        // Nested values of a known member are read past, and are simply the wrong type.
        assert_eq!(
            code_and_field(parse_create(br#"{"name": {"a": [1, {"b": null}]}}"#, NOW)),
            ("validation_error", Some("name".into()))
        );
        assert_eq!(
            code_and_field(parse_create(br#"[{"name": "x"}, 1.5]"#, NOW)),
            ("invalid_json", None)
        );
    }

    #[test]
    fn patch_takes_name_and_or_scopes_and_nothing_else() {
        assert_eq!(
            parse_patch(br#"{"name": "New"}"#).unwrap(),
            KeyChange {
                name: Some("New".into()),
                scopes: None,
                allowed_ips: None,
            }
        );
        assert_eq!(
            code_and_field(parse_patch(b"{}")),
            ("validation_error", None)
        );
        for field in ["isActive", "key", "expiresAt", "id", "allowedIp"] {
            let body = format!(r#"{{"name": "x", "{field}": 1}}"#);
            assert_eq!(
                code_and_field(parse_patch(body.as_bytes())),
                ("unknown_field", Some(field.into()))
            );
        }
        assert_eq!(
            code_and_field(parse_patch(br#"{"scopes": null}"#)),
            ("validation_error", Some("scopes".into()))
        );
    }

    #[test]
    fn allowed_ips_are_canonicalised_on_create_and_null_clears_them_on_patch() {
        let parsed = parse_create(
            br#"{"name": "x", "allowedIps": [" 203.0.113.0/24", "2001:DB8:0::1", "203.0.113.0/24"]}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(
            parsed.allowed_ips.unwrap().entries(),
            ["203.0.113.0/24", "2001:db8::1/128"]
        );
        let parsed = parse_create(br#"{"name": "x", "allowedIps": null}"#, NOW).unwrap();
        assert_eq!(parsed.allowed_ips, None);
        assert_eq!(
            parse_patch(br#"{"allowedIps": null}"#).unwrap().allowed_ips,
            Some(None)
        );
        let narrowed = parse_patch(br#"{"allowedIps": ["198.51.100.7"]}"#).unwrap();
        assert_eq!(
            narrowed.allowed_ips.unwrap().unwrap().entries(),
            ["198.51.100.7/32"]
        );
        assert_eq!(parse_patch(br#"{"name": "x"}"#).unwrap().allowed_ips, None);
    }

    #[test]
    fn each_kind_of_bad_allow_list_is_refused_on_the_allowed_ips_field() {
        let fifty_one: Vec<String> = (0..51).map(|i| format!("\"10.0.0.{i}\"")).collect();
        let fifty_one = format!("[{}]", fifty_one.join(","));
        for (list, names_entry) in [
            (r#"["garbage"]"#, Some("Entry 1 of allowedIps: ")),
            (
                r#"["10.0.0.1", "10.0.0.1/8"]"#,
                Some("Entry 2 of allowedIps: "),
            ),
            (r#"["::ffff:203.0.113.9"]"#, Some("Entry 1 of allowedIps: ")),
            (r#"["10.0.0.0/33"]"#, Some("Entry 1 of allowedIps: ")),
            (r#"["2001:db8::/129"]"#, Some("Entry 1 of allowedIps: ")),
            (r#"["10.0.0.1", 5]"#, Some("Entry 2 of allowedIps: ")),
            (r#"["\u0007"]"#, Some("Entry 1 of allowedIps: ")),
            ("[]", None),
            (&fifty_one, None),
            (r#""10.0.0.1""#, None),
            ("{}", None),
            ("[[\"10.0.0.1\"]]", Some("Entry 1 of allowedIps: ")),
        ] {
            let body = format!(r#"{{"name": "x", "allowedIps": {list}}}"#);
            let error = parse_create(body.as_bytes(), NOW).unwrap_err();
            let BodyError::Invalid {
                field: Some("allowedIps"),
                message,
            } = &error
            else {
                panic!("{list}: {error:?}");
            };
            assert!(!message.chars().any(char::is_control), "{message}");
            if let Some(prefix) = names_entry {
                assert!(message.starts_with(prefix), "{list}: {message}");
            }
            let patch = format!(r#"{{"allowedIps": {list}}}"#);
            assert_eq!(
                code_and_field(parse_patch(patch.as_bytes())),
                ("validation_error", Some("allowedIps".into())),
                "{list}"
            );
        }
        let worst = format!(
            r#"{{"name": "x", "allowedIps": ["1.1.1.1", {}]}}"#,
            serde_json::to_string(&"\u{10ffff}".repeat(5000)).unwrap()
        );
        let BodyError::Invalid { message, .. } = parse_create(worst.as_bytes(), NOW).unwrap_err()
        else {
            panic!("a validation error");
        };
        assert!(message.chars().count() <= 512, "{message}");
        assert!(
            parse_create(br#"{"name": "x", "allowedIps": ["10.0.0.1/8"]}"#, NOW)
                .is_err_and(|e| format!("{e:?}").contains("the block is 10.0.0.0/8"))
        );
    }

    #[test]
    fn rotate_grace_is_bounded_and_defaults_to_zero() {
        assert_eq!(parse_rotate(b"").unwrap(), 0);
        assert_eq!(parse_rotate(b"{}").unwrap(), 0);
        assert_eq!(
            parse_rotate(br#"{"gracePeriodSeconds": 604800}"#).unwrap(),
            604800
        );
        for bad in [
            r#"{"gracePeriodSeconds": 604801}"#,
            r#"{"gracePeriodSeconds": -1}"#,
            r#"{"gracePeriodSeconds": 1.5}"#,
            r#"{"gracePeriodSeconds": "60"}"#,
        ] {
            assert_eq!(
                code_and_field(parse_rotate(bad.as_bytes())),
                ("validation_error", Some("gracePeriodSeconds".into())),
                "{bad}"
            );
        }
    }
}
