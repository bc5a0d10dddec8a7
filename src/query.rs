//! Request URLs and their query strings, split by hand: the `url` crate would bring its IDNA
//! and Unicode tables into the wasm (about 30 KiB of code and most of the data section) for a
//! split that the runtime's already normalised URL makes simple.

/// The parts of an absolute request URL as the runtime hands it over (`scheme://host/path?query`,
/// already normalised), borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `scheme://host[:port]`
    pub origin: &'a str,
    /// From the first `/` after the host, without query and fragment; `/` when there is none.
    pub path: &'a str,
    pub query: Option<&'a str>,
}

pub fn split_url(url: &str) -> UrlParts<'_> {
    let url = url.split('#').next().unwrap_or_default();
    let (url, query) = match url.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (url, None),
    };
    let host_start = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[host_start..]
        .find('/')
        .map_or(url.len(), |i| host_start + i);
    let path = &url[path_start..];
    UrlParts {
        origin: &url[..path_start],
        path: if path.is_empty() { "/" } else { path },
        query,
    }
}

/// The name/value pairs of a query, percent-decoded, with `+` read as a space. Malformed escapes
/// are kept as they are; whatever they decode to is then refused by the parameter's own parser.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && text.is_char_boundary(i + 1)
                && text.is_char_boundary(i + 3) =>
            {
                match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn splits_a_request_url_into_origin_path_and_query() {
        let parts = |origin, path, query| UrlParts {
            origin,
            path,
            query,
        };
        for (url, expected) in [
            (
                "http://acme.localhost:8787/crm/contacts?page=2&x=/y",
                parts(
                    "http://acme.localhost:8787",
                    "/crm/contacts",
                    Some("page=2&x=/y"),
                ),
            ),
            (
                "https://acme.rallycrm.io/",
                parts("https://acme.rallycrm.io", "/", None),
            ),
            (
                "https://acme.rallycrm.io?q",
                parts("https://acme.rallycrm.io", "/", Some("q")),
            ),
            (
                "https://acme.rallycrm.io/a%3F%2Fb?c#frag?x",
                parts("https://acme.rallycrm.io", "/a%3F%2Fb", Some("c")),
            ),
            (
                "https://acme.rallycrm.io/p?",
                parts("https://acme.rallycrm.io", "/p", Some("")),
            ),
        ] {
            assert_eq!(split_url(url), expected, "{url}");
        }
    }

    #[test]
    fn splits_and_decodes_pairs() {
        assert_eq!(
            pairs("limit=10&cursor=abc-_"),
            vec![pair("limit", "10"), pair("cursor", "abc-_")]
        );
        assert_eq!(
            pairs("a=%31%30&b=x+y&c&&d="),
            vec![
                pair("a", "10"),
                pair("b", "x y"),
                pair("c", ""),
                pair("d", "")
            ]
        );
        assert_eq!(pairs(""), vec![]);
    }

    #[test]
    fn keeps_malformed_escapes_and_never_panics() {
        assert_eq!(
            pairs("a=%&b=%4&c=%zz&d=%e2%82"),
            vec![
                pair("a", "%"),
                pair("b", "%4"),
                pair("c", "%zz"),
                pair("d", "\u{fffd}")
            ]
        );
        assert_eq!(pairs("a=%é1"), vec![pair("a", "%é1")]);
    }
}
