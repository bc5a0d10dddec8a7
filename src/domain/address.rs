//! Per-key IP allow-lists: IPv4 and IPv6 addresses and CIDR blocks, parsed with `std::net`, kept
//! in one canonical form (`203.0.113.0/24`, `2001:db8::1/128`), and matched against the client
//! address the edge is given (`CF-Connecting-IP`).
//!
//! IPv4 and IPv6 are separate families: an IPv4 client matches only IPv4 blocks. An IPv4 client
//! can also be written as an IPv4-mapped IPv6 address (`::ffff:203.0.113.9`); the client address
//! is read as the IPv4 one it maps, and a list may not name mapped addresses, so that every
//! IPv4 rule has exactly one spelling.

use std::fmt;
use std::net::IpAddr;

/// The most entries a list may have.
pub const MAX_ENTRIES: usize = 50;

/// One CIDR block: a network address with no bits set past its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

/// Why one entry is not a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// Not an IPv4 or IPv6 address (before any `/`).
    NotAnAddress,
    /// The part after `/` is not a whole number from 0 to `max`.
    BadPrefix { max: u8 },
    /// An IPv4-mapped IPv6 address: the IPv4 form is the one to use.
    Ipv4Mapped,
    /// Bits set past the prefix; `network` is the block that was probably meant.
    HostBitsSet { network: IpBlock },
}

impl IpBlock {
    /// `address` (a block of one: `/32` or `/128`) or `address/prefix`.
    pub fn parse(text: &str) -> Result<IpBlock, BlockError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| BlockError::NotAnAddress)?;
        if let IpAddr::V6(v6) = address {
            if v6.to_ipv4_mapped().is_some() {
                return Err(BlockError::Ipv4Mapped);
            }
        }
        let max = max_prefix(address);
        let prefix = match prefix {
            None => max,
            Some(digits) => parse_prefix(digits)
                .filter(|p| *p <= max)
                .ok_or(BlockError::BadPrefix { max })?,
        };
        let block = IpBlock {
            network: network_of(address, prefix),
            prefix,
        };
        if block.network != address {
            return Err(BlockError::HostBitsSet { network: block });
        }
        Ok(block)
    }

    /// Whether `address` is inside this block. An IPv4-mapped IPv6 address counts as the IPv4
    /// address it maps.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        max_prefix(address) == max_prefix(self.network)
            && network_of(address, self.prefix) == self.network
    }
}

/// `network/prefix`, IPv6 in RFC 5952 form (as `Ipv6Addr` displays it).
impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Decimal digits only, without a sign or leading zeros: `u8::from_str` alone would also take
/// `+24` and `024`, which are not how anyone writes a prefix.
fn parse_prefix(digits: &str) -> Option<u8> {
    let plain = !digits.is_empty()
        && digits.len() <= 3
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    plain.then(|| digits.parse().ok()).flatten()
}

/// `address` with every bit past `prefix` cleared. `prefix` is at most the family's width.
fn network_of(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// A key's allow-list: 1 to `MAX_ENTRIES` blocks, in the order given, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList(Vec<IpBlock>);

/// Why a list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    Empty,
    TooMany,
    /// The entry at `index` (from 0) is not a block.
    Entry {
        index: usize,
        error: BlockError,
    },
}

impl AllowList {
    /// Parses each entry; entries that name the same block once canonical count once.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<AllowList, ListError> {
        let mut blocks: Vec<IpBlock> = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            if index == MAX_ENTRIES {
                return Err(ListError::TooMany);
            }
            let block = IpBlock::parse(entry).map_err(|error| ListError::Entry { index, error })?;
            if !blocks.contains(&block) {
                blocks.push(block);
            }
        }
        if blocks.is_empty() {
            return Err(ListError::Empty);
        }
        Ok(AllowList(blocks))
    }

    /// Reads the stored form written by `Display`; `None` if it is not one.
    pub fn from_canonical(stored: &str) -> Option<AllowList> {
        AllowList::parse(stored.split(',')).ok()
    }

    /// Each block in canonical form, as the API shows them.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether a request from `client` (the `CF-Connecting-IP` value, if any) is inside the
    /// list. No address, or one that does not parse, is outside every list.
    pub fn admits(&self, client: Option<&str>) -> bool {
        let Some(address) = client.and_then(|c| c.trim().parse::<IpAddr>().ok()) else {
            return false;
        };
        self.0.iter().any(|block| block.contains(address))
    }
}

/// The stored form: canonical blocks joined by commas (no address contains one).
impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, block) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{block}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> IpBlock {
        IpBlock::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn single_addresses_become_blocks_of_one_and_ipv6_is_written_as_rfc_5952_says() {
        for (given, canonical) in [
            ("203.0.113.9", "203.0.113.9/32"),
            ("203.0.113.0/24", "203.0.113.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("2001:DB8:0:0:0:0:0:1", "2001:db8::1/128"),
            (
                "2001:0db8:0000:0000:0001:0000:0000:0000/80",
                "2001:db8:0:0:1::/80",
            ),
            ("::/0", "::/0"),
            ("::1", "::1/128"),
        ] {
            assert_eq!(block(given).to_string(), canonical, "{given}");
            assert_eq!(block(canonical), block(given), "{given}");
        }
    }

    #[test]
    fn every_kind_of_bad_entry_is_refused_with_its_reason() {
        for (text, error) in [
            ("", BlockError::NotAnAddress),
            ("garbage", BlockError::NotAnAddress),
            ("203.0.113", BlockError::NotAnAddress),
            ("203.0.113.256", BlockError::NotAnAddress),
            ("010.0.0.1", BlockError::NotAnAddress),
            (" 10.0.0.1", BlockError::NotAnAddress),
            ("fe80::1%eth0", BlockError::NotAnAddress),
            ("[2001:db8::1]", BlockError::NotAnAddress),
            ("/24", BlockError::NotAnAddress),
            ("10.0.0.0/33", BlockError::BadPrefix { max: 32 }),
            ("2001:db8::/129", BlockError::BadPrefix { max: 128 }),
            ("10.0.0.0/", BlockError::BadPrefix { max: 32 }),
            ("10.0.0.0/+8", BlockError::BadPrefix { max: 32 }),
            ("10.0.0.0/08", BlockError::BadPrefix { max: 32 }),
            ("10.0.0.0/8/8", BlockError::BadPrefix { max: 32 }),
            ("10.0.0.0/-1", BlockError::BadPrefix { max: 32 }),
            ("10.0.0.0/999", BlockError::BadPrefix { max: 32 }),
            ("::ffff:203.0.113.9", BlockError::Ipv4Mapped),
            ("::ffff:0:0/96", BlockError::Ipv4Mapped),
        ] {
            assert_eq!(IpBlock::parse(text), Err(error), "{text:?}");
        }
        assert_eq!(
            IpBlock::parse("203.0.113.9/24"),
            Err(BlockError::HostBitsSet {
                network: block("203.0.113.0/24")
            })
        );
        assert_eq!(
            IpBlock::parse("2001:db8::1/64"),
            Err(BlockError::HostBitsSet {
                network: block("2001:db8::/64")
            })
        );
    }

    #[test]
    fn a_block_holds_its_first_and_last_address_and_nothing_either_side() {
        let v4 = block("203.0.113.0/24");
        assert!(v4.contains(ip("203.0.113.0")) && v4.contains(ip("203.0.113.255")));
        assert!(!v4.contains(ip("203.0.112.255")) && !v4.contains(ip("203.0.114.0")));
        let v6 = block("2001:db8::/32");
        assert!(
            v6.contains(ip("2001:db8::"))
                && v6.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
        assert!(
            !v6.contains(ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"))
                && !v6.contains(ip("2001:db9::"))
        );
        let any_v4 = block("0.0.0.0/0");
        assert!(any_v4.contains(ip("255.255.255.255")) && !any_v4.contains(ip("::1")));
        assert!(!block("::/0").contains(ip("203.0.113.9")));
    }

    #[test]
    fn a_mapped_client_address_counts_as_its_ipv4_address() {
        let v4 = block("203.0.113.0/24");
        assert!(v4.contains(ip("::ffff:203.0.113.9")));
        assert!(!v4.contains(ip("::ffff:198.51.100.1")));
        assert!(!block("::/0").contains(ip("::ffff:203.0.113.9")));
    }

    #[test]
    fn a_list_is_one_to_fifty_entries_and_repeats_count_once() {
        let list = AllowList::parse(["203.0.113.0/24", "2001:db8::1", "2001:DB8::1/128"]).unwrap();
        assert_eq!(list.entries(), ["203.0.113.0/24", "2001:db8::1/128"]);
        assert_eq!(list.to_string(), "203.0.113.0/24,2001:db8::1/128");
        assert_eq!(AllowList::from_canonical(&list.to_string()), Some(list));
        assert_eq!(AllowList::parse([]), Err(ListError::Empty));
        let fifty: Vec<String> = (0..50).map(|i| format!("10.0.0.{i}")).collect();
        assert!(AllowList::parse(fifty.iter().map(String::as_str)).is_ok());
        let fifty_one: Vec<String> = (0..51).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(
            AllowList::parse(fifty_one.iter().map(String::as_str)),
            Err(ListError::TooMany)
        );
        assert_eq!(
            AllowList::parse(["10.0.0.1", "nope"]),
            Err(ListError::Entry {
                index: 1,
                error: BlockError::NotAnAddress
            })
        );
        assert_eq!(AllowList::from_canonical(""), None);
    }

    #[test]
    fn a_client_without_an_address_or_with_garbage_is_outside_every_list() {
        let list = AllowList::parse(["0.0.0.0/0", "::/0"]).unwrap();
        assert!(list.admits(Some("198.51.100.1")) && list.admits(Some("2001:db8::5")));
        for client in [None, Some(""), Some("unknown"), Some("198.51.100.1:443")] {
            assert!(!list.admits(client), "{client:?}");
        }
    }
}
