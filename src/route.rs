//! The route table: every path and method is decided here, once. A path this service owns gets
//! its handler, or 405 with the methods it lists, or 404; every other path is a CRM route for the
//! gateway. Pure, so that each row is unit-tested natively.
//!
//! The method is the request's own string: `worker::Method` reads any method it does not know
//! (PROPFIND, PURGE, …) as GET, which would turn an extension method into a read.

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    OpenApi,
    /// The public keys of the identity assertions.
    Jwks,
    ListKeys,
    CreateKey,
    CurrentKey,
    GetKey(&'a str),
    UpdateKey(&'a str),
    RevokeKey(&'a str),
    RotateKey(&'a str),
    /// The audit log, filtered by the query.
    AuditEvents,
    /// A key's usage report.
    KeyUsage(&'a str),
    /// A file of the settings page, served by the assets binding.
    SettingsAsset,
    DevLogin,
    /// GitHub's secret-scanning partner alerts: on any host of the service, for every tenant.
    SecretScanningGithub,
    /// An own path with a method it does not list.
    NotAllowed {
        allow: &'static str,
    },
    /// Under an own prefix, but no such resource.
    OwnNotFound,
    /// Everything else: a CRM route, checked and forwarded.
    Gateway,
}

/// The methods an own path can list. Anything else, extension methods included, is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
    Patch,
    Delete,
    Other,
}

impl Method {
    fn parse(method: &str) -> Method {
        // The runtime upper-cases the standard methods (Fetch's method normalisation); other
        // methods are case-sensitive and arrive as sent, so `get` stays unknown here unless the
        // runtime normalised it.
        match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }
}

/// Paths that serve every tenant at once: the Host only has to be one of the service's, and the
/// tenant comes from the request's content.
pub fn is_tenantless(segments: &[&str]) -> bool {
    matches!(segments, ["api", "v1", "secret-scanning", ..])
}

/// The segments of a path: `/api/v1/api-keys` → `["api", "v1", "api-keys"]`.
pub fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

pub fn route<'a>(method: &str, segments: &[&'a str]) -> Route<'a> {
    use Method::*;
    let method = Method::parse(method);
    let not_allowed = |allow| Route::NotAllowed { allow };
    match segments {
        ["healthz"] => match method {
            Get | Head => Route::Health,
            _ => not_allowed("GET, HEAD"),
        },
        [".well-known", "jwks.json"] => match method {
            Get | Head => Route::Jwks,
            _ => not_allowed("GET, HEAD"),
        },
        ["api", "v1", "openapi.json"] => match method {
            Get | Head => Route::OpenApi,
            _ => not_allowed("GET, HEAD"),
        },
        ["api", "v1", "api-keys"] => match method {
            Get => Route::ListKeys,
            Post => Route::CreateKey,
            _ => not_allowed("GET, POST"),
        },
        ["api", "v1", "api-keys", "current"] => match method {
            Get => Route::CurrentKey,
            _ => not_allowed("GET"),
        },
        ["api", "v1", "api-keys", id] => match method {
            Get => Route::GetKey(id),
            Patch => Route::UpdateKey(id),
            Delete => Route::RevokeKey(id),
            _ => not_allowed("GET, PATCH, DELETE"),
        },
        ["api", "v1", "api-keys", id, "rotate"] => match method {
            Post => Route::RotateKey(id),
            _ => not_allowed("POST"),
        },
        ["api", "v1", "api-keys", id, "usage"] => match method {
            Get => Route::KeyUsage(id),
            _ => not_allowed("GET"),
        },
        ["api", "v1", "api-keys", ..] => Route::OwnNotFound,
        ["api", "v1", "secret-scanning", "github"] => match method {
            Post => Route::SecretScanningGithub,
            _ => not_allowed("POST"),
        },
        ["api", "v1", "secret-scanning", ..] => Route::OwnNotFound,
        ["api", "v1", "audit-events"] => match method {
            Get => Route::AuditEvents,
            _ => not_allowed("GET"),
        },
        ["api", "v1", "audit-events", ..] => Route::OwnNotFound,
        ["settings", "dev-login"] => match method {
            Post => Route::DevLogin,
            _ => not_allowed("POST"),
        },
        ["settings", ..] => match method {
            Get | Head => Route::SettingsAsset,
            _ => not_allowed("GET, HEAD"),
        },
        _ => Route::Gateway,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6f8d2e-5c1a-4e3b-9a7d-2f4c6e8a0b1c";
    const METHODS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "PURGE",
    ];

    fn at(method: &str, path: &str) -> Route<'static> {
        let path: &'static str = Box::leak(path.to_string().into_boxed_str());
        route(method, &segments(path))
    }

    /// Each own path with the methods it lists; every other method, extension methods
    /// included, is 405 with exactly that list.
    #[test]
    fn every_own_path_answers_its_methods_and_refuses_the_rest_with_allow() {
        let key = format!("/api/v1/api-keys/{ID}");
        let rotate = format!("{key}/rotate");
        let usage = format!("{key}/usage");
        // (path, the Allow it lists, each listed method with its route)
        type Row<'a> = (&'a str, &'static str, Vec<(&'static str, Route<'a>)>);
        let table: Vec<Row<'_>> = vec![
            (
                "/healthz",
                "GET, HEAD",
                vec![("GET", Route::Health), ("HEAD", Route::Health)],
            ),
            (
                "/api/v1/openapi.json",
                "GET, HEAD",
                vec![("GET", Route::OpenApi), ("HEAD", Route::OpenApi)],
            ),
            (
                "/api/v1/api-keys",
                "GET, POST",
                vec![("GET", Route::ListKeys), ("POST", Route::CreateKey)],
            ),
            (
                "/api/v1/api-keys/current",
                "GET",
                vec![("GET", Route::CurrentKey)],
            ),
            (
                &key,
                "GET, PATCH, DELETE",
                vec![
                    ("GET", Route::GetKey(ID)),
                    ("PATCH", Route::UpdateKey(ID)),
                    ("DELETE", Route::RevokeKey(ID)),
                ],
            ),
            (&rotate, "POST", vec![("POST", Route::RotateKey(ID))]),
            (&usage, "GET", vec![("GET", Route::KeyUsage(ID))]),
            (
                "/api/v1/audit-events",
                "GET",
                vec![("GET", Route::AuditEvents)],
            ),
            (
                "/settings/dev-login",
                "POST",
                vec![("POST", Route::DevLogin)],
            ),
            (
                "/settings/api-keys",
                "GET, HEAD",
                vec![
                    ("GET", Route::SettingsAsset),
                    ("HEAD", Route::SettingsAsset),
                ],
            ),
        ];
        for (path, allow, listed) in table {
            for method in METHODS {
                let expected = listed
                    .iter()
                    .find(|(m, _)| *m == method)
                    .map_or(Route::NotAllowed { allow }, |(_, r)| *r);
                assert_eq!(at(method, path), expected, "{method} {path}");
            }
        }
    }

    #[test]
    fn a_lower_case_or_unknown_method_is_never_read_as_get() {
        assert_eq!(
            at("get", "/api/v1/api-keys"),
            Route::NotAllowed { allow: "GET, POST" }
        );
        assert_eq!(
            at("PROPFIND", "/api/v1/api-keys"),
            Route::NotAllowed { allow: "GET, POST" }
        );
    }

    #[test]
    fn unknown_resources_under_own_prefixes_are_not_found_not_forwarded() {
        for path in [
            "/api/v1/api-keys/x/y",
            "/api/v1/secret-scanning/gitlab",
            &format!("/api/v1/api-keys/{ID}/rotate/again"),
            &format!("/api/v1/api-keys/{ID}/usage/x"),
            &format!("/api/v1/api-keys/{ID}/other"),
            "/api/v1/audit-events/",
            &format!("/api/v1/audit-events/{ID}"),
        ] {
            assert_eq!(at("GET", path), Route::OwnNotFound, "{path}");
        }
    }

    #[test]
    fn every_other_path_goes_to_the_gateway_with_any_method() {
        for path in [
            "/",
            "/contacts",
            "/contacts/1",
            "/api/v1/contacts",
            "/api/v2/api-keys",
            "/api/v1/audit-event",
            "/api/v2/audit-events",
            "/healthz/x",
            "/api/v1/openapi.json/x",
            "/apiv1/api-keys",
        ] {
            for method in METHODS {
                assert_eq!(at(method, path), Route::Gateway, "{method} {path}");
            }
        }
    }
}
