//! The CRM session as the settings page carries it: an HS256 JWT in the `__Host-rally_session` cookie
//! (HttpOnly; Secure; SameSite=Strict), the cross-site check for state-changing requests that
//! rely on it, and the development-only sign-in gate.

use super::{tenant::Tenant, time::Millis};
use serde::Serialize;

/// `__Host-`: the browser accepts the cookie only from this very host, over HTTPS, with
/// `Path=/` and no `Domain`, so a sibling subdomain (another tenant) cannot plant a session.
pub const COOKIE_NAME: &str = "__Host-rally_session";
pub const DEV_SESSION_SECONDS: i64 = 8 * 3600;

/// The session token from a `Cookie` header, if it has one.
pub fn session_from_cookies(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Whether a cookie-authenticated request may change state. Safe methods always may. Others must
/// show they come from this very origin: `Sec-Fetch-Site: same-origin`, or an `Origin` header equal
/// to the request's own origin. A request with neither is refused, since a cookie alone proves
/// nothing about who made the request.
pub fn same_origin_or_safe(
    method: &str,
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    request_origin: &str,
) -> bool {
    if matches!(method, "GET" | "HEAD" | "OPTIONS") {
        return true;
    }
    match (sec_fetch_site, origin) {
        (Some(site), _) if site != "same-origin" => false,
        (_, Some(origin)) => origin.eq_ignore_ascii_case(request_origin),
        (Some(_), None) => true,
        (None, None) => false,
    }
}

/// The claims of a development admin session for `tenant`, valid for `DEV_SESSION_SECONDS` from
/// `now`: the shape the CRM's own sessions have.
#[derive(Debug, Serialize, PartialEq)]
pub struct DevAdminClaims {
    pub sub: &'static str,
    pub tenant: String,
    pub role: &'static str,
    pub email: String,
    pub exp: i64,
}

pub fn dev_admin_claims(tenant: &Tenant, now: Millis) -> DevAdminClaims {
    DevAdminClaims {
        sub: "dev-admin",
        tenant: tenant.to_string(),
        role: "admin",
        email: format!("dev-admin@{tenant}.localhost"),
        exp: now / 1000 + DEV_SESSION_SECONDS,
    }
}

/// The `Set-Cookie` value for a session token.
pub fn session_cookie(token: &str, max_age_seconds: i64) -> String {
    format!("{COOKIE_NAME}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age_seconds}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_admin_claims_name_the_tenant_and_last_eight_hours() {
        let tenant = Tenant::from_host("acme.localhost:8787", "rallycrm.io").unwrap();
        let claims = dev_admin_claims(&tenant, 1_700_000_000_500);
        assert_eq!(
            serde_json::to_string(&claims).unwrap(),
            r#"{"sub":"dev-admin","tenant":"acme","role":"admin","email":"dev-admin@acme.localhost","exp":1700028800}"#
        );
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        assert_eq!(
            session_from_cookies("a=1; __Host-rally_session=tok.en.x; b=2"),
            Some("tok.en.x")
        );
        assert_eq!(
            session_from_cookies("__Host-rally_session=\"q\""),
            Some("q")
        );
        assert_eq!(
            session_from_cookies("__Host-rally_session_old=x; other=y"),
            None
        );
        assert_eq!(session_from_cookies("__Host-rally_session="), None);
        assert_eq!(session_from_cookies(""), None);
        // The unprefixed name can be planted by a sibling subdomain: it is not a session.
        assert_eq!(session_from_cookies("rally_session=tok.en.x"), None);
    }

    #[test]
    fn state_changes_need_proof_of_same_origin() {
        let own = "http://acme.localhost:8787";
        assert!(same_origin_or_safe(
            "GET",
            Some("cross-site"),
            Some("https://evil.test"),
            own
        ));
        assert!(same_origin_or_safe(
            "POST",
            Some("same-origin"),
            Some(own),
            own
        ));
        assert!(same_origin_or_safe(
            "DELETE",
            Some("same-origin"),
            None,
            own
        ));
        assert!(same_origin_or_safe("PATCH", None, Some(own), own));
        assert!(!same_origin_or_safe(
            "POST",
            Some("cross-site"),
            Some(own),
            own
        ));
        assert!(!same_origin_or_safe("POST", Some("same-site"), None, own));
        assert!(!same_origin_or_safe(
            "POST",
            None,
            Some("https://evil.test"),
            own
        ));
        assert!(!same_origin_or_safe("DELETE", None, None, own));
        assert!(!same_origin_or_safe(
            "POST",
            Some("same-origin"),
            Some("https://evil.test"),
            own
        ));
    }

    #[test]
    fn the_cookie_is_host_only_http_only_secure_and_strict() {
        let cookie = session_cookie("t", 60);
        assert!(!cookie.to_ascii_lowercase().contains("domain="));
        for attribute in [
            "__Host-rally_session=t",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(cookie.contains(attribute), "{attribute}");
        }
    }
}
