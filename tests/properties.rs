//! Property tests of the pure parsers: whatever the input, they never panic, and what they
//! accept round-trips.

use proptest::prelude::*;
use rally_edge_keys::domain::{
    address::{AllowList, BlockError, IpBlock},
    base64url,
    cursor::{Cursor, List},
    jwt,
    key::PlainKey,
    request_body,
    scopes::Scopes,
    tenant::Tenant,
};
use rally_edge_keys::error::AppError;
use rally_edge_keys::json_object::{self, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
            (|b| request_body::parse_create(b, NOW).map(|k| format!("{k:?}")).map_err(AppError::from), &["name", "scopes", "expiresAt", "allowedIps"]),
            (|b| request_body::parse_patch(b).map(|c| format!("{c:?}")).map_err(AppError::from), &["name", "scopes", "allowedIps"]),
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

    /// The reader itself against serde_json::Value: the same verdict on every text, and for
    /// an object, each member's value as Value reads it (the last of repeated members), reduced
    /// to what the reader keeps: strings, whole numbers, null, and arrays one level deep.
    #[test]
    fn the_body_reader_keeps_what_serde_json_value_reads(
        members in prop::collection::vec((member_name(), json_value()), 0..6),
        top in prop_oneof![3 => Just(None), 1 => json_value().prop_map(Some)],
        cut in proptest::option::of(0usize..200),
    ) {
        let mut body = match &top {
            Some(value) => value.clone(),
            None => format!("{{{}}}", members.iter().map(|(n, v)| format!("{n:?}: {v}")).collect::<Vec<_>>().join(", ")),
        };
        if let Some(cut) = cut {
            body.truncate(body.char_indices().nth(cut).map_or(body.len(), |(i, _)| i));
        }
        let ours = json_object::read(body.as_bytes(), &KNOWN);
        match serde_json::from_str::<serde_json::Value>(&body) {
            Err(_) => prop_assert_eq!(ours.err(), Some(json_object::ObjectError::NotJson), "{}", body),
            Ok(serde_json::Value::Object(reference)) => {
                let unknown = reference.keys().find(|k| !KNOWN.contains(&k.as_str()));
                match (ours, unknown) {
                    (Err(json_object::ObjectError::UnknownMember(_)), Some(_)) => {}
                    (Ok(object), None) => {
                        for name in KNOWN {
                            let expected = reference.get(name).map(|v| kept(v, false));
                            prop_assert_eq!(object.get(name), expected.as_ref(), "{}: {}", name, body);
                        }
                    }
                    (ours, _) => prop_assert!(false, "{:?} for {}", ours, body),
                }
            }
            Ok(_) => prop_assert_eq!(ours.err(), Some(json_object::ObjectError::NotAnObject), "{}", body),
        }
    }

    #[test]
    fn an_ipv4_block_holds_exactly_the_addresses_from_its_first_to_its_last(
        address in any::<u32>(), prefix in 0u8..=32, other in any::<u32>(),
    ) {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let (first, last) = (address & mask, address | !mask);
        let block = IpBlock::parse(&format!("{}/{prefix}", Ipv4Addr::from(first))).unwrap();
        let v4 = |n: u32| IpAddr::V4(n.into());
        prop_assert!(block.contains(v4(first)) && block.contains(v4(last)) && block.contains(v4(address)));
        if let Some(before) = first.checked_sub(1) {
            prop_assert!(!block.contains(v4(before)));
        }
        if let Some(after) = last.checked_add(1) {
            prop_assert!(!block.contains(v4(after)));
        }
        prop_assert_eq!(block.contains(v4(other)), (first..=last).contains(&other));
        // The same address as IPv4-mapped IPv6 is the same client; as a block it is refused.
        let mapped = Ipv4Addr::from(other).to_ipv6_mapped();
        prop_assert_eq!(block.contains(IpAddr::V6(mapped)), block.contains(v4(other)));
        prop_assert_eq!(IpBlock::parse(&mapped.to_string()), Err(BlockError::Ipv4Mapped));
        // IPv4-compatible IPv6 (`::a.b.c.d`, deprecated) is IPv6: no IPv4 block holds it.
        prop_assert!(!block.contains(IpAddr::V6(Ipv6Addr::from(u128::from(other)))));
    }

    #[test]
    fn an_ipv6_block_holds_exactly_the_addresses_from_its_first_to_its_last(
        address in any::<u128>(), prefix in 0u8..=128, other in any::<u128>(), near in any::<u64>(),
    ) {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        let (first, last) = (address & mask, address | !mask);
        prop_assume!(Ipv6Addr::from(first).to_ipv4_mapped().is_none());
        let block = IpBlock::parse(&format!("{}/{prefix}", Ipv6Addr::from(first))).unwrap();
        let v6 = |n: u128| IpAddr::V6(n.into());
        let inside = |n: u128| Ipv6Addr::from(n).to_ipv4_mapped().is_none() && (first..=last).contains(&n);
        prop_assert!(block.contains(v6(first)) && block.contains(v6(last)));
        if let Some(before) = first.checked_sub(1) {
            prop_assert_eq!(block.contains(v6(before)), inside(before));
        }
        if let Some(after) = last.checked_add(1) {
            prop_assert_eq!(block.contains(v6(after)), inside(after));
        }
        // Far away and close by: random addresses, and ones a little past either end.
        for n in [other, first.wrapping_sub(u128::from(near)), last.wrapping_add(u128::from(near))] {
            prop_assert_eq!(block.contains(v6(n)), inside(n), "{}", Ipv6Addr::from(n));
        }
        prop_assert!(!block.contains(IpAddr::V4(Ipv4Addr::from(address as u32))));
    }

    #[test]
    fn a_block_with_bits_past_its_prefix_is_refused_and_names_its_network(
        address in any::<u32>(), prefix in 0u8..=32,
    ) {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let text = format!("{}/{prefix}", Ipv4Addr::from(address));
        let network = format!("{}/{prefix}", Ipv4Addr::from(address & mask));
        match IpBlock::parse(&text) {
            Ok(block) => prop_assert!(address & !mask == 0 && block.to_string() == text),
            Err(BlockError::HostBitsSet { network: named }) => {
                prop_assert!(address & !mask != 0);
                prop_assert_eq!(named.to_string(), network);
            }
            Err(other) => prop_assert!(false, "{:?} for {}", other, text),
        }
    }

    #[test]
    fn canonical_lists_round_trip_and_parsing_never_panics(
        entries in prop::collection::vec(prop_oneof![ip_entry(), ".{0,20}"], 0..8),
    ) {
        if let Ok(list) = AllowList::parse(entries.iter().map(String::as_str)) {
            let stored = list.to_string();
            let again = AllowList::from_canonical(&stored).unwrap();
            prop_assert_eq!(again.to_string(), stored);
            prop_assert_eq!(again, list);
        }
    }
}

/// What the body reader keeps of a value serde_json::Value read.
fn kept(value: &serde_json::Value, in_array: bool) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::String(text) => Value::String(text.clone()),
        serde_json::Value::Number(n) => n.as_u64().map_or(Value::Other, Value::Whole),
        serde_json::Value::Array(items) if !in_array => {
            Value::Array(items.iter().map(|item| kept(item, true)).collect())
        }
        _ => Value::Other,
    }
}

/// Entries as people write them: addresses and blocks of both families, with and without host
/// bits, in upper and lower case.
fn ip_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), proptest::option::of(0u8..=34)).prop_map(|(a, p)| match p {
            Some(p) => format!("{}/{p}", Ipv4Addr::from(a)),
            None => Ipv4Addr::from(a).to_string(),
        }),
        (
            any::<u128>(),
            proptest::option::of(0u8..=130),
            any::<bool>()
        )
            .prop_map(|(a, p, upper)| {
                let text = match p {
                    Some(p) => format!("{}/{p}", Ipv6Addr::from(a)),
                    None => Ipv6Addr::from(a).to_string(),
                };
                if upper {
                    text.to_uppercase()
                } else {
                    text
                }
            }),
    ]
}

const NOW: i64 = 1_700_000_000_000;
const KNOWN: [&str; 5] = [
    "name",
    "scopes",
    "expiresAt",
    "gracePeriodSeconds",
    "allowedIps",
];

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
            "2001-01-01T00:00:00Z",
            "203.0.113.0/24",
            "2001:db8::1",
            "10.0.0.1/8",
            "::ffff:203.0.113.9",
            "198.51.100.7/33"
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

/// The parsers this round added: the partner endpoint's untrusted inputs, the signing key, the
/// route table and the edge-owned header rule.
mod this_round {
    use proptest::prelude::*;
    use rally_edge_keys::domain::{forwarding, identity::SigningKey, secret_scanning};
    use rally_edge_keys::route::{route, segments, Route};

    /// DER of `SEQUENCE { INTEGER r, INTEGER s }` for 32-byte big-endian r and s.
    fn der(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
        let integer = |v: &[u8; 32]| {
            let start = v.iter().position(|b| *b != 0).unwrap_or(31);
            let mut body = v[start..].to_vec();
            if body[0] >= 0x80 {
                body.insert(0, 0);
            }
            let mut out = vec![0x02, body.len() as u8];
            out.extend(body);
            out
        };
        let mut inner = integer(r);
        inner.extend(integer(s));
        let mut out = vec![0x30, inner.len() as u8];
        out.extend(inner);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_der_signature_converts_to_exactly_its_r_and_s(r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
            let raw = secret_scanning::der_signature_to_raw(&der(&r, &s)).unwrap();
            prop_assert_eq!(&raw[..32], &r[..]);
            prop_assert_eq!(&raw[32..], &s[..]);
        }

        #[test]
        fn untrusted_partner_inputs_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), text in ".{0,200}") {
            let _ = secret_scanning::der_signature_to_raw(&bytes);
            let _ = secret_scanning::parse_alert(&bytes);
            let _ = secret_scanning::standard_base64(&text);
            let _ = secret_scanning::pem_to_der(&text);
            let _ = secret_scanning::KeyList::parse(&text);
            let _ = SigningKey::parse(&text);
        }

        #[test]
        fn the_route_table_never_forwards_an_own_path(method in "[A-Za-z]{1,10}", rest in prop::collection::vec("[a-z0-9.-]{0,12}", 0..4)) {
            for prefix in ["/api/v1/api-keys", "/api/v1/secret-scanning", "/settings"] {
                let path = std::iter::once(prefix.to_string()).chain(rest.iter().map(|r| format!("/{r}"))).collect::<String>();
                prop_assert_ne!(route(&method, &segments(&path)), Route::Gateway, "{} {}", method, path);
            }
        }

        #[test]
        fn edge_owned_headers_are_recognised_in_any_case_and_separator(
            name in prop::sample::select(vec!["x-api-key", "x-forwarded-host", "x-forwarded-proto", "x-rally-tenant", "x-rally-anything"]),
            flips in prop::collection::vec(any::<(bool, bool)>(), 20),
        ) {
            let spelled: String = name.chars().zip(flips.iter().cycle()).map(|(c, (upper, underscore))| match c {
                '-' if *underscore => '_',
                c if *upper => c.to_ascii_uppercase(),
                c => c,
            }).collect();
            prop_assert!(forwarding::is_edge_owned(&spelled), "{}", spelled);
        }
    }
}
