//! Paged lists, the same for every list of the API: `?limit=` (1-1000, default 100) and
//! `?cursor=` in, and a `Link: <…>; rel="next"` header out while more remain.

use crate::config::names;
use crate::domain::{
    cursor::{Cursor, List},
    tenant::Tenant,
};
use crate::error::AppError;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// What a request asks for: at most `limit` items, after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<Cursor>,
}

/// Reads and writes one list's cursors for one tenant.
pub struct Pager<'a> {
    pub list: List,
    pub tenant: &'a Tenant,
    /// The cursors' MAC key (from `JWT_SECRET`). Only a request that sends or gets a cursor
    /// needs it, so that a list that fits one page works without it.
    pub key: Option<&'a [u8]>,
}

impl Pager<'_> {
    /// `limit` and `cursor` from a query's pairs; other names are the caller's. Every occurrence
    /// is checked, and the last one counts.
    pub fn parse(&self, pairs: &[(String, String)]) -> Result<Page, AppError> {
        let mut page = Page {
            limit: DEFAULT_LIMIT,
            after: None,
        };
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => {
                    page.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            AppError::validation(
                                "limit",
                                format!("limit must be a whole number from 1 to {MAX_LIMIT}."),
                            )
                        })?
                }
                "cursor" => {
                    page.after = Some(
                        Cursor::decode(value, self.list, self.tenant, self.key()?)
                            .ok_or(AppError::InvalidCursor)?,
                    )
                }
                _ => {}
            }
        }
        Ok(page)
    }

    /// The `Link` header of the next page: `url` (origin and path) with the `filters` the
    /// request had, the same limit, and the cursor after this page. Filter values are ids and
    /// the cursor is base64url, so nothing needs escaping.
    pub fn next_link(
        &self,
        url: &str,
        filters: &[(&str, String)],
        limit: u32,
        next: &Cursor,
    ) -> Result<String, AppError> {
        let cursor = next.encode(self.list, self.tenant, self.key()?);
        let filters: String = filters
            .iter()
            .map(|(name, value)| format!("{name}={value}&"))
            .collect();
        Ok(format!(
            "<{url}?{filters}limit={limit}&cursor={cursor}>; rel=\"next\""
        ))
    }

    fn key(&self) -> Result<&[u8], AppError> {
        self.key.ok_or_else(|| {
            AppError::Unavailable(format!("{} is not set: no cursor key", names::JWT_SECRET))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn pager(tenant: &Tenant) -> Pager<'_> {
        Pager {
            list: List::AuditEvents,
            tenant,
            key: Some(b"k"),
        }
    }

    #[test]
    fn limit_defaults_to_100_and_must_be_1_to_1000() {
        let acme = Tenant::parse("acme").unwrap();
        let pager = pager(&acme);
        assert_eq!(pager.parse(&[]).unwrap().limit, 100);
        assert_eq!(pager.parse(&pairs(&[("limit", "1")])).unwrap().limit, 1);
        assert_eq!(
            pager.parse(&pairs(&[("limit", "1000")])).unwrap().limit,
            1000
        );
        for bad in ["0", "1001", "abc", "", "-1", "1.5", " 5"] {
            let error = pager.parse(&pairs(&[("limit", bad)])).unwrap_err();
            assert_eq!(
                (error.code(), error.status()),
                ("validation_error", 400),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_next_link_carries_filters_limit_and_a_cursor_this_list_reads_back() {
        let acme = Tenant::parse("acme").unwrap();
        let pager = pager(&acme);
        let next = Cursor {
            created_at: 1_700_000_000_000,
            id: Uuid::from_bytes([9; 16]),
        };
        let id = Uuid::from_bytes([1; 16]).to_string();
        let link = pager
            .next_link(
                "https://acme.rallycrm.io/api/v1/audit-events",
                &[("keyId", id.clone())],
                2,
                &next,
            )
            .unwrap();
        let prefix =
            format!("<https://acme.rallycrm.io/api/v1/audit-events?keyId={id}&limit=2&cursor=");
        assert!(
            link.starts_with(&prefix) && link.ends_with(">; rel=\"next\""),
            "{link}"
        );
        let cursor = &link[prefix.len()..link.len() - ">; rel=\"next\"".len()];
        let page = pager
            .parse(&pairs(&[("limit", "2"), ("cursor", cursor)]))
            .unwrap();
        assert_eq!(
            page,
            Page {
                limit: 2,
                after: Some(next)
            }
        );
        let keys = Pager {
            list: List::ApiKeys,
            ..pager
        };
        assert_eq!(
            keys.parse(&pairs(&[("cursor", cursor)])).unwrap_err(),
            AppError::InvalidCursor
        );
    }

    #[test]
    fn without_a_cursor_key_only_cursors_are_unavailable() {
        let acme = Tenant::parse("acme").unwrap();
        let keyless = Pager {
            key: None,
            ..pager(&acme)
        };
        assert_eq!(keyless.parse(&pairs(&[("limit", "5")])).unwrap().limit, 5);
        assert_eq!(
            keyless
                .parse(&pairs(&[("cursor", "AAAA")]))
                .unwrap_err()
                .status(),
            503
        );
    }
}
