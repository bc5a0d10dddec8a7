//! The request bodies of the management API, parsed from bytes into checked values. Content type
//! and size are the HTTP layer's job; everything about the JSON itself is decided here.

use super::{
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
}

#[derive(Debug, PartialEq)]
pub struct KeyChange {
    pub name: Option<String>,
    pub scopes: Option<Scopes>,
}

/// `POST /api/v1/api-keys`: `name` (required), `scopes` (default `read`), `expiresAt`.
pub fn parse_create(body: &[u8], now: Millis) -> Result<NewKey, BodyError> {
    let fields = object(body, &["name", "scopes", "expiresAt"])?;
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
    Ok(NewKey {
        name,
        scopes,
        expires_at,
    })
}

/// `PATCH /api/v1/api-keys/{id}`: `name` and/or `scopes`, nothing else.
pub fn parse_patch(body: &[u8]) -> Result<KeyChange, BodyError> {
    let fields = object(body, &["name", "scopes"])?;
    let change = KeyChange {
        name: fields.get("name").map(parse_name).transpose()?,
        scopes: fields.get("scopes").map(parse_scopes).transpose()?,
    };
    if change.name.is_none() && change.scopes.is_none() {
        return Err(BodyError::Invalid {
            field: None,
            message: "Send name and/or scopes.".into(),
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
                expires_at: None
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
                scopes: None
            }
        );
        assert_eq!(
            code_and_field(parse_patch(b"{}")),
            ("validation_error", None)
        );
        for field in ["isActive", "key", "expiresAt", "id"] {
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
