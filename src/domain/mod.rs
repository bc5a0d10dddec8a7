//! The pure domain: no `worker` types, so everything here is tested natively with `cargo test`.
//! Untrusted input is parsed into these types at the boundary; after that it is known good.

pub mod address;
pub mod audit;
pub mod base64url;
pub mod cache_entry;
pub mod cursor;
pub mod forwarding;
pub mod identity;
pub mod jwt;
pub mod key;
pub mod model;
pub mod request_body;
pub mod scopes;
pub mod secret_scanning;
pub mod session;
pub mod tenant;
pub mod time;
pub mod usage;
