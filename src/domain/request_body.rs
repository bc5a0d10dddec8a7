//! The request bodies of the management API, parsed from bytes into checked values. Content type
//! and size are the HTTP layer's job; everything about the JSON itself is decided here.

use super::{
    scopes::{ScopeError, Scopes},
    time::{parse_rfc3339, Millis},
};
use crate::error::AppError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

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
pub fn parse_create(body: &[u8], now: Millis) -> Result<NewKey, AppError> {
    let fields = json_object(body, &["name", "scopes", "expiresAt"])?;
    let name = match fields.get("name") {
        None | Some(Member::Null) => return Err(AppError::validation("name", "name is required.")),
        Some(value) => parse_name(value)?,
    };
    let scopes = match fields.get("scopes") {
        None | Some(Member::Null) => Scopes::READ,
        Some(value) => parse_scopes(value)?,
    };
    let expires_at = match fields.get("expiresAt") {
        None | Some(Member::Null) => None,
        Some(value) => Some(parse_expiry(value, now)?),
    };
    Ok(NewKey {
        name,
        scopes,
        expires_at,
    })
}

/// `PATCH /api/v1/api-keys/{id}`: `name` and/or `scopes`, nothing else.
pub fn parse_patch(body: &[u8]) -> Result<KeyChange, AppError> {
    let fields = json_object(body, &["name", "scopes"])?;
    let change = KeyChange {
        name: fields.get("name").map(parse_name).transpose()?,
        scopes: fields.get("scopes").map(parse_scopes).transpose()?,
    };
    if change.name.is_none() && change.scopes.is_none() {
        return Err(AppError::Validation {
            field: None,
            message: "Send name and/or scopes.".into(),
        });
    }
    Ok(change)
}

/// `POST /api/v1/api-keys/{id}/rotate`: an optional `gracePeriodSeconds`, 0 by default. An
/// empty body means the default.
pub fn parse_rotate(body: &[u8]) -> Result<u64, AppError> {
    if body.is_empty() {
        return Ok(0);
    }
    let fields = json_object(body, &["gracePeriodSeconds"])?;
    match fields.get("gracePeriodSeconds") {
        None | Some(Member::Null) => Ok(0),
        Some(value) => value
            .as_u64()
            .filter(|s| *s <= MAX_GRACE_SECONDS)
            .ok_or_else(|| {
                AppError::validation(
                    "gracePeriodSeconds",
                    format!(
                        "gracePeriodSeconds must be a whole number from 0 to {MAX_GRACE_SECONDS}."
                    ),
                )
            }),
    }
}

fn json_object(body: &[u8], allowed: &[&str]) -> Result<Fields, AppError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let value = MemberSeed { top: true }
        .deserialize(&mut json)
        .and_then(|value| json.end().map(|_| value))
        .map_err(|_| AppError::InvalidJson("The body is not valid JSON."))?;
    let Member::Object(fields) = value else {
        return Err(AppError::InvalidJson("The body must be a JSON object."));
    };
    if let Some((unknown, _)) = fields
        .0
        .iter()
        .find(|(k, _)| !allowed.contains(&k.as_str()))
    {
        return Err(AppError::UnknownField(unknown.chars().take(64).collect()));
    }
    Ok(fields)
}

/// A body's members in document order. A repeated member counts as its last occurrence, as in
/// JavaScript's `JSON.parse`.
#[derive(Debug, PartialEq)]
struct Fields(Vec<(String, Member)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&Member> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// A JSON value, as far as these bodies care: the body itself is an object, and its members
/// hold only strings, whole numbers and null; anything else is the wrong type. Reading into
/// this rather than `serde_json::Value` keeps Value's tree, its map and its float printing out
/// of the wasm.
#[derive(Debug, PartialEq)]
enum Member {
    /// Only at the top: nested objects are read past, as `Other`.
    Object(Fields),
    Null,
    Text(String),
    Whole(u64),
    Other,
}

impl Member {
    fn as_str(&self) -> Option<&str> {
        match self {
            Member::Text(text) => Some(text),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Member::Whole(n) => Some(*n),
            _ => None,
        }
    }
}

/// Reads one value; `top` says whether an object's members are kept or read past.
#[derive(Clone, Copy)]
struct MemberSeed {
    top: bool,
}

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed {
    type Value = Member;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
        if !self.top {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Member::Other);
        }
        let mut fields = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            fields.push((name, map.next_value_seed(MemberSeed { top: false })?));
        }
        Ok(Member::Object(Fields(fields)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Member::Other)
    }
    fn visit_unit<E>(self) -> Result<Member, E> {
        Ok(Member::Null)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Member, E> {
        Ok(Member::Text(text.to_string()))
    }
    fn visit_string<E>(self, text: String) -> Result<Member, E> {
        Ok(Member::Text(text))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Member, E> {
        Ok(Member::Whole(n))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Member, E> {
        Ok(u64::try_from(n).map_or(Member::Other, Member::Whole))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Member, E> {
        Ok(Member::Other)
    }
}

fn parse_name(value: &Member) -> Result<String, AppError> {
    let name = value
        .as_str()
        .ok_or_else(|| AppError::validation("name", "name must be a string."))?
        .trim();
    let length = name.chars().count();
    if length == 0 || length > NAME_MAX_CHARS {
        return Err(AppError::validation(
            "name",
            format!("name must be 1 to {NAME_MAX_CHARS} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::validation(
            "name",
            "name must not contain control characters.",
        ));
    }
    Ok(name.to_string())
}

fn parse_scopes(value: &Member) -> Result<Scopes, AppError> {
    let list = value.as_str().ok_or_else(|| {
        AppError::validation(
            "scopes",
            "scopes must be a comma-separated string of read, write and admin.",
        )
    })?;
    Scopes::parse(list).map_err(|error| match error {
        ScopeError::Empty => AppError::validation(
            "scopes",
            "scopes must name at least one of read, write and admin, with no empty items.",
        ),
        ScopeError::Unknown(scope) => AppError::validation(
            "scopes",
            format!("Unknown scope {scope:?}; use read, write and admin."),
        ),
    })
}

fn parse_expiry(value: &Member, now: Millis) -> Result<Millis, AppError> {
    let at = value.as_str().and_then(parse_rfc3339).ok_or_else(|| {
        AppError::validation(
            "expiresAt",
            "expiresAt must be an RFC 3339 timestamp, or null.",
        )
    })?;
    if at <= now {
        return Err(AppError::validation(
            "expiresAt",
            "expiresAt must be in the future.",
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_700_000_000_000;

    fn code_and_field(
        result: Result<impl std::fmt::Debug, AppError>,
    ) -> (&'static str, Option<String>) {
        let error = result.unwrap_err();
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
