//! Property tests of the pure parsers: whatever the input, they never panic, and what they
//! accept round-trips.

use proptest::prelude::*;
use rally_edge_keys::domain::{
    base64url,
    cursor::{Cursor, List},
    jwt,
    key::PlainKey,
    request_body,
    scopes::Scopes,
    tenant::Tenant,
};
use rally_edge_keys::error::AppError;
use uuid::Uuid;

const SCOPE_NAMES: [&str; 3] = ["read", "write", "admin"];

fn tenant_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scope_canonicalisation_is_order_free_idempotent_and_ignores_spaces_and_duplicates(
        picks in prop::collection::vec((0usize..3, " {0,2}", " {0,2}"), 1..8),
    ) {
        let list: Vec<String> = picks.iter().map(|(i, before, after)| format!("{before}{}{after}", SCOPE_NAMES[*i])).collect();
        let scopes = Scopes::parse(&list.join(",")).unwrap();
        let canonical = scopes.to_string();
        prop_assert_eq!(Scopes::parse(&canonical).unwrap().to_string(), canonical.clone());
        let mut reversed = list.clone();
        reversed.reverse();
        prop_assert_eq!(Scopes::parse(&reversed.join(",")).unwrap().to_string(), canonical.clone());
        let expected: Vec<&str> = SCOPE_NAMES.iter().enumerate().filter(|(i, _)| picks.iter().any(|p| p.0 == *i)).map(|(_, n)| *n).collect();
        prop_assert_eq!(canonical, expected.join(","));
    }

    #[test]
    fn scope_parsing_never_panics(text in ".{0,64}") {
        let _ = Scopes::parse(&text);
    }

    #[test]
    fn cursors_round_trip_and_any_changed_character_is_refused(
        created_at in any::<i64>(), id in any::<[u8; 16]>(), label in tenant_label(), position in any::<prop::sample::Index>(),
    ) {
        let tenant = Tenant::parse(&label).unwrap();
        let cursor = Cursor { created_at, id: Uuid::from_bytes(id) };
        let text = cursor.encode(List::AuditEvents, &tenant, b"secret");
        prop_assert_eq!(Cursor::decode(&text, List::AuditEvents, &tenant, b"secret"), Some(cursor));
        let mut chars: Vec<char> = text.chars().collect();
        let i = position.index(chars.len());
        chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
        let tampered: String = chars.into_iter().collect();
        prop_assert_eq!(Cursor::decode(&tampered, List::AuditEvents, &tenant, b"secret"), None);
    }

    #[test]
    fn cursor_decoding_never_panics(text in ".{0,120}") {
        for list in [List::ApiKeys, List::AuditEvents] {
            let _ = Cursor::decode(&text, list, &Tenant::parse("acme").unwrap(), b"secret");
        }
    }

    #[test]
    fn valid_tenant_hosts_parse_with_or_without_a_port(label in tenant_label(), port in proptest::option::of(1u16..)) {
        for root in ["rallycrm.io", "localhost"] {
            let host = match port {
                Some(port) => format!("{label}.{root}:{port}"),
                None => format!("{label}.{root}"),
            };
            let tenant = Tenant::from_host(&host.to_uppercase(), "rallycrm.io").unwrap();
            prop_assert_eq!(tenant.as_str(), label.as_str());
        }
    }

    #[test]
    fn tenant_parsing_never_panics_and_only_yields_valid_labels(host in ".{0,80}") {
        if let Some(tenant) = Tenant::from_host(&host, "rallycrm.io") {
            prop_assert!(Tenant::parse(tenant.as_str()).is_some());
            prop_assert!(!tenant.as_str().contains('.'));
        }
    }

    #[test]
    fn keys_parse_exactly_the_documented_format(secret in "[0-9a-f]{32}", noise in ".{0,48}") {
        let key = format!("rk_live_{secret}");
        let parsed = PlainKey::parse(&key).unwrap();
        prop_assert_eq!(parsed.reveal(), key.as_str());
        prop_assert_eq!(parsed.prefix(), key[..12].to_string());
        let valid_noise = noise.len() == 40 && noise.starts_with("rk_live_") && noise[8..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        prop_assert_eq!(PlainKey::parse(&noise).is_some(), valid_noise);
    }

    #[test]
    fn jwt_verification_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(jwt::verify(&text, b"secret", 1.0e9).is_err());
    }

    #[test]
    fn jwt_verification_never_panics_on_three_base64_segments(
        header in prop::collection::vec(any::<u8>(), 0..64),
        claims in prop::collection::vec(any::<u8>(), 0..128),
        signature in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let token = format!("{}.{}.{}", base64url::encode(&header), base64url::encode(&claims), base64url::encode(&signature));
        prop_assert!(jwt::verify(&token, b"secret", 1.0e9).is_err());
    }

    #[test]
    fn base64url_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        prop_assert_eq!(base64url::decode(&base64url::encode(&bytes)), Some(bytes));
    }

    #[test]
    fn request_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = request_body::parse_create(&bytes, 0);
        let _ = request_body::parse_patch(&bytes);
        let _ = request_body::parse_rotate(&bytes);
    }

    /// The body reader is hand-written against serde's visitor API; serde_json::Value is the
    /// reference. Whatever the text, it must be refused as invalid JSON exactly when Value
    /// refuses it or finds no object, and otherwise give the same answer as the same object
    /// written out by Value (members sorted, repeats collapsed to the last one).
    #[test]
    fn request_bodies_read_as_serde_json_value_reads_them(
        members in prop::collection::vec((member_name(), json_value()), 0..6),
        top in prop_oneof![Just(None), json_value().prop_map(Some)],
        cut in proptest::option::of(0usize..200),
    ) {
        let mut body = match &top {
            Some(value) => value.clone(),
            None => format!("{{{}}}", members.iter().map(|(n, v)| format!("{n:?}: {v}")).collect::<Vec<_>>().join(", ")),
        };
        if let Some(cut) = cut {
            body.truncate(body.char_indices().nth(cut).map_or(body.len(), |(i, _)| i));
        }
        let reference = serde_json::from_str::<serde_json::Value>(&body).ok().filter(|v| v.is_object());
        type Parser = fn(&[u8]) -> Result<String, AppError>;
        let parsers: [(Parser, &[&str]); 3] = [
            (|b| request_body::parse_create(b, NOW).map(|k| format!("{k:?}")).map_err(AppError::from), &["name", "scopes", "expiresAt"]),
            (|b| request_body::parse_patch(b).map(|c| format!("{c:?}")).map_err(AppError::from), &["name", "scopes"]),
            (|b| request_body::parse_rotate(b).map(|g| g.to_string()).map_err(AppError::from), &["gracePeriodSeconds"]),
        ];
        for (parse, allowed) in parsers {
            let ours = parse(body.as_bytes());
            match &reference {
                None if body.is_empty() => {}
                None => prop_assert_eq!(ours.map_err(|e| e.code()), Err("invalid_json"), "{}", body),
                Some(value) => {
                    let normal = parse(value.to_string().as_bytes());
                    let unknown = value.as_object().unwrap().keys().filter(|k| !allowed.contains(&k.as_str())).count();
                    match (&ours, &normal) {
                        // Value sorts members, so with two unknown ones it names another first.
                        (Err(a), Err(b)) if a.code() == "unknown_field" && unknown > 1 => prop_assert_eq!(a.code(), b.code()),
                        _ => prop_assert_eq!(ours, normal, "{}", body),
                    }
                }
            }
        }
    }
}

const NOW: i64 = 1_700_000_000_000;
const KNOWN: [&str; 4] = ["name", "scopes", "expiresAt", "gracePeriodSeconds"];

/// Mostly the members the bodies know, sometimes another.
fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KNOWN.to_vec()).prop_map(String::from),
        1 => "[a-zA-Z]{1,8}",
    ]
}

/// JSON text of every type, nested a little, with strings that the rules care about.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..700_000).prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        prop::sample::select(vec![
            "read",
            "write,admin",
            " read , read ",
            "",
            "owner",
            "2030-01-01T00:00:00Z",
            "2001-01-01T00:00:00Z"
        ])
        .prop_map(|s| format!("{s:?}")),
        "\\PC{0,12}|[\\x00-\\x1f]{1,3}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..3).prop_map(|m| format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k:?}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ]
    })
}
