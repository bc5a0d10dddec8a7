-- The first migration: the schema as it stood when migrations were introduced, the same tables,
-- columns and indexes as schema.sql (a test builds a database from each and compares them).
-- Applied with `npx wrangler d1 migrations apply DB --local` (or `--remote --env production`);
-- wrangler records each applied file in the d1_migrations table and never applies it twice.
-- IF NOT EXISTS everywhere, so that a database created from schema.sql before migrations
-- existed takes this migration as a no-op and only starts recording from here.
-- Times are milliseconds since the Unix epoch (UTC). Every row carries its tenant.

CREATE TABLE IF NOT EXISTS api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,  -- UUID v4
    tenant       TEXT    NOT NULL,              -- the Host's subdomain
    key_prefix   TEXT    NOT NULL,              -- first 12 characters of the current secret
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,              -- canonical: read,write,admin order
    expires_at   INTEGER,                       -- NULL: never expires
    last_used_at INTEGER,
    revoked_at   INTEGER,                       -- NULL: not revoked; final once set
    created_at   INTEGER NOT NULL,
    created_by   TEXT
);

-- The list, newest first, and its cursor.
CREATE INDEX IF NOT EXISTS api_keys_by_tenant_created ON api_keys (tenant, created_at DESC, id DESC);

-- The secrets of a key: one current (valid_until NULL) and, after a rotation with a grace period,
-- the previous one until valid_until. Only SHA-256(key) is stored, never the key.
CREATE TABLE IF NOT EXISTS api_key_secrets (
    key_hash    TEXT    NOT NULL PRIMARY KEY,   -- hex SHA-256 of the key
    key_id      TEXT    NOT NULL REFERENCES api_keys (id),
    tenant      TEXT    NOT NULL,
    valid_until INTEGER
) WITHOUT ROWID;

-- Re-syncing the cache after a change reads every secret of one key.
CREATE INDEX IF NOT EXISTS api_key_secrets_by_key ON api_key_secrets (tenant, key_id);
