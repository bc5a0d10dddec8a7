//! A reader for request bodies that are one JSON object (RFC 8259): its members in document
//! order, each value reduced to what those bodies use.
//!
//! Hand-written rather than `#[derive(Deserialize)]`, because serde's derive cannot name the
//! member that was wrong, and the API's errors must (`field`). Reading into this rather than
//! `serde_json::Value` also keeps Value's tree, its map and its float printing out of the wasm.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Why a body is not an object this reader accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// Not JSON text, or trailing data after it.
    NotJson,
    /// JSON, but not an object at the top.
    NotAnObject,
    /// A member whose name is not in the allowed list (the first such, as sent).
    UnknownMember(String),
}

/// An object's members (name/value pairs) in document order.
#[derive(Debug, PartialEq)]
pub struct Object(Vec<(String, Value)>);

impl Object {
    /// The value of the member `name`. A repeated member counts as its last occurrence, as in
    /// JavaScript's `JSON.parse`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A member's value, as far as the API's bodies care: they hold only strings, whole numbers,
/// null, and arrays of those; anything else is the wrong type for every member, and is read past.
#[derive(Debug, PartialEq)]
pub enum Value {
    Null,
    String(String),
    /// A number that is a whole number from 0 to `u64::MAX`.
    Whole(u64),
    /// An array, one level deep: an array or object inside it is `Other`.
    Array(Vec<Value>),
    /// Any other number, a boolean, an object, or an array or object inside an array.
    Other,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Whole(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Reads `body` as one JSON object whose member names are all in `allowed`.
pub fn read(body: &[u8], allowed: &[&str]) -> Result<Object, ObjectError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let top = TopSeed
        .deserialize(&mut json)
        .and_then(|top| json.end().map(|_| top))
        .map_err(|_| ObjectError::NotJson)?;
    let object = top.ok_or(ObjectError::NotAnObject)?;
    if let Some((unknown, _)) = object
        .0
        .iter()
        .find(|(n, _)| !allowed.contains(&n.as_str()))
    {
        return Err(ObjectError::UnknownMember(
            unknown.chars().take(64).collect(),
        ));
    }
    Ok(object)
}

/// Reads the top-level value: `Some` for an object, `None` for any other JSON value.
struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Option<Object>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Option<Object>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            members.push((name, map.next_value_seed(ValueSeed { in_array: false })?));
        }
        Ok(Some(Object(members)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Reads one member's value, or one element of a member's array. Objects, and arrays inside
/// an array, are read past as `Other`: no body has a use for them, and one level keeps the
/// reader's depth and memory bounded by the body's size alone.
struct ValueSeed {
    in_array: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.in_array {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Value::Other);
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed { in_array: true })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_string()))
    }
    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Whole(n))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(u64::try_from(n).map_or(Value::Other, Value::Whole))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_order_and_the_last_repeat_wins() {
        let object = read(
            br#"{"a": "x", "b": 7, "a": null, "c": [1, {"d": 2}]}"#,
            &["a", "b", "c"],
        )
        .unwrap();
        assert_eq!(object.get("a"), Some(&Value::Null));
        assert_eq!(object.get("b"), Some(&Value::Whole(7)));
        assert_eq!(
            object.get("c"),
            Some(&Value::Array(vec![Value::Whole(1), Value::Other]))
        );
        assert_eq!(object.get("z"), None);
    }

    #[test]
    fn arrays_are_read_one_level_deep() {
        let object = read(
            br#"{"a": ["x", null, 2, true, [1], {"b": 1}], "b": [], "c": {"d": ["x"]}}"#,
            &["a", "b", "c"],
        )
        .unwrap();
        assert_eq!(
            object.get("a"),
            Some(&Value::Array(vec![
                Value::String("x".into()),
                Value::Null,
                Value::Whole(2),
                Value::Other,
                Value::Other,
                Value::Other,
            ]))
        );
        assert_eq!(object.get("b").and_then(Value::as_array), Some(&[][..]));
        assert_eq!(object.get("c"), Some(&Value::Other));
    }

    #[test]
    fn each_kind_of_refusal_is_told_apart() {
        assert_eq!(read(b"{\"a\": ", &["a"]), Err(ObjectError::NotJson));
        assert_eq!(read(b"{} {}", &["a"]), Err(ObjectError::NotJson));
        for not_object in [&b"[]"[..], b"null", b"\"a\"", b"1", b"-1.5", b"true"] {
            assert_eq!(read(not_object, &["a"]), Err(ObjectError::NotAnObject));
        }
        assert_eq!(
            read(br#"{"a": 1, "zeta": 2, "alpha": 3}"#, &["a"]),
            Err(ObjectError::UnknownMember("zeta".into()))
        );
    }

    #[test]
    fn numbers_are_whole_or_other() {
        let object = read(
            br#"{"a": -1, "b": 1.5, "c": 18446744073709551615}"#,
            &["a", "b", "c"],
        )
        .unwrap();
        assert_eq!(object.get("a"), Some(&Value::Other));
        assert_eq!(object.get("b"), Some(&Value::Other));
        assert_eq!(object.get("c"), Some(&Value::Whole(u64::MAX)));
    }
}
