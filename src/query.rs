//! URL query strings, parsed by hand: the `url` crate would bring its IDNA and Unicode tables
//! into the wasm (about 30 KiB of code and most of the data section) for two parameters.

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
