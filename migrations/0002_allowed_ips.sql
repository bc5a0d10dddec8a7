-- Per-key IP allow-lists. NULL: any client address (every key created before this migration).
-- Otherwise the canonical list, comma-separated CIDR blocks such as
-- `203.0.113.0/24,2001:db8::1/128`; the Worker writes it and reads it back with each key and
-- with each secret lookup, so that the cached grant carries it.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;
