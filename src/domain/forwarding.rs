//! What the edge guarantees about the headers a forwarded request carries: the headers that only
//! the edge may set are removed from what the client sent, whatever their spelling.

/// Whether a client-sent header belongs to the edge and must not reach the origin. Names are
/// compared lower-cased and with `_` read as `-`: CGI, WSGI, Rack and PHP present both
/// `X-Rally-Tenant` and `X_Rally_Tenant` to the application as `HTTP_X_RALLY_TENANT`.
pub fn is_edge_owned(name: &str) -> bool {
    let name: String = name
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    matches!(
        name.as_str(),
        "x-api-key" | "x-forwarded-host" | "x-forwarded-proto"
    ) || name.starts_with("x-rally-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_headers_are_recognised_in_every_spelling() {
        for name in [
            "x-api-key",
            "X-Api-Key",
            "X_Api_Key",
            "x_api-key",
            "X-Forwarded-Host",
            "x_forwarded_proto",
            "X-Rally-Tenant",
            "X_Rally_Tenant",
            "x_rally_scopes",
            "X-RALLY-IDENTITY",
            "x-rally-",
        ] {
            assert!(is_edge_owned(name), "{name}");
        }
        for name in [
            "x-api-keys",
            "authorization",
            "x-forwarded-for",
            "x-rally",
            "xrally-tenant",
            "content-type",
            "x-request-id",
        ] {
            assert!(!is_edge_owned(name), "{name}");
        }
    }
}
