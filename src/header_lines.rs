//! A request's headers as the gateway reads them: one string from the runtime, a name line and a
//! value line per header (`boundary::header_lines`), so that they cross from JavaScript once.
//! Where each name and value lies is found once, since the gateway looks up about ten headers a
//! request: splitting the lines again for each lookup showed in the edge bench's profiles.

use std::ops::Range;

pub struct HeaderLines {
    lines: String,
    spans: Vec<Span>,
}

/// Where a header's name and value are in `HeaderLines::lines`.
struct Span {
    name: Range<usize>,
    value: Range<usize>,
}

impl HeaderLines {
    /// `lines`: each header's name, a newline, its value, a newline. Neither a header's name nor
    /// its value can contain a newline; a last name without its value line is ignored.
    pub fn new(lines: String) -> HeaderLines {
        let mut spans = Vec::with_capacity(16);
        let mut parts = lines.split_terminator('\n');
        let mut at = 0;
        while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
            let value_at = at + name.len() + 1;
            spans.push(Span {
                name: at..value_at - 1,
                value: value_at..value_at + value.len(),
            });
            at = value_at + value.len() + 1;
        }
        HeaderLines { lines, spans }
    }

    /// The value of header `name` (any case), as `Headers.get` gives it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.spans
            .iter()
            .find(|span| self.lines[span.name.clone()].eq_ignore_ascii_case(name))
            .map(|span| &self.lines[span.value.clone()])
    }

    /// The names, as the runtime gave them (lower-case).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().map(|span| &self.lines[span.name.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_values_by_name_in_any_case() {
        let headers = HeaderLines::new("host\nacme.rallycrm.io\nx-api-key\nrk_live_x\n".into());
        assert_eq!(headers.get("host"), Some("acme.rallycrm.io"));
        assert_eq!(headers.get("X-Api-Key"), Some("rk_live_x"));
        assert_eq!(headers.get("x-api"), None);
        assert_eq!(headers.names().collect::<Vec<_>>(), ["host", "x-api-key"]);
    }

    #[test]
    fn keeps_empty_values_and_ignores_a_name_without_a_value() {
        let headers = HeaderLines::new("a\n\nb\nvalue\nc\n".into());
        assert_eq!(headers.get("a"), Some(""));
        assert_eq!(headers.get("b"), Some("value"));
        assert_eq!(headers.get("c"), None);
        assert_eq!(HeaderLines::new(String::new()).names().count(), 0);
    }

    proptest! {
        /// Whatever the headers, each lookup gives what a scan of the pairs gives: the first
        /// header of that name.
        #[test]
        fn a_lookup_gives_the_first_pair_of_that_name(
            pairs in proptest::collection::vec(("[a-cA-C-]{0,3}", "[^\n]{0,6}"), 0..8),
            asked in "[a-cA-C-]{0,3}",
        ) {
            let lines: String = pairs.iter().map(|(n, v)| format!("{n}\n{v}\n")).collect();
            let headers = HeaderLines::new(lines);
            let expected = pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(&asked)).map(|(_, v)| v.as_str());
            prop_assert_eq!(headers.get(&asked), expected);
            prop_assert_eq!(headers.names().collect::<Vec<_>>(), pairs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
        }
    }
}
