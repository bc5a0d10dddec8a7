//! Property tests of the pure parsers: whatever the input, they never panic, and what they
//! accept round-trips.

use proptest::prelude::*;
use rally_edge_keys::domain::{
    base64url, cursor::Cursor, jwt, key::PlainKey, request_body, scopes::Scopes, tenant::Tenant,
};
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
        let text = cursor.encode(&tenant, b"secret");
        prop_assert_eq!(Cursor::decode(&text, &tenant, b"secret"), Some(cursor));
        let mut chars: Vec<char> = text.chars().collect();
        let i = position.index(chars.len());
        chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
        let tampered: String = chars.into_iter().collect();
        prop_assert_eq!(Cursor::decode(&tampered, &tenant, b"secret"), None);
    }

    #[test]
    fn cursor_decoding_never_panics(text in ".{0,120}") {
        let _ = Cursor::decode(&text, &Tenant::parse("acme").unwrap(), b"secret");
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
}
