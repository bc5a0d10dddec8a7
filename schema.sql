-- Rally CRM API keys: the whole current schema in one file, for reading. Databases are built and
-- changed by migrations/ (`npx wrangler d1 migrations apply DB --local`, or `--remote`); every
-- migration's change is made here too, and the e2e test `migrations::…` checks that both agree.
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
    created_by   TEXT,
    allowed_ips  TEXT                           -- NULL: any client address; else canonical CIDR
                                                -- blocks, comma-separated
);

-- The list, newest first, and its cursor: WHERE tenant = ? [AND (created_at, id) < (?, ?)]
-- ORDER BY created_at DESC, id DESC.
CREATE INDEX IF NOT EXISTS api_keys_by_tenant_created ON api_keys (tenant, created_at DESC, id DESC);

-- The secrets of a key: one current (valid_until NULL) and, after a rotation with a grace period,
-- the previous one until valid_until. Only SHA-256(key) is stored, never the key.
CREATE TABLE IF NOT EXISTS api_key_secrets (
    key_hash    TEXT    NOT NULL PRIMARY KEY,   -- hex SHA-256 of the key; unique, and the edge's lookup
    key_id      TEXT    NOT NULL REFERENCES api_keys (id),
    tenant      TEXT    NOT NULL,
    valid_until INTEGER
) WITHOUT ROWID;

-- Re-syncing the cache after a change reads every secret of one key.
CREATE INDEX IF NOT EXISTS api_key_secrets_by_key ON api_key_secrets (tenant, key_id);

-- The audit log: one event per change to a key, written in the same batch (one transaction) as
-- the change. No key, key hash or token is ever in it. No foreign key to api_keys: the record of
-- a key outlives whatever becomes of the key.
CREATE TABLE IF NOT EXISTS audit_events (
    id       TEXT    NOT NULL PRIMARY KEY,  -- UUID v4
    tenant   TEXT    NOT NULL,
    at       INTEGER NOT NULL,              -- when the request that made the change arrived
    action   TEXT    NOT NULL,              -- api_key.created, .updated, .rotated, .revoked, .leaked
    key_id   TEXT    NOT NULL,
    actor    TEXT    NOT NULL,              -- the createdBy rule: email, else sub; apikey:{id}
    actor_ip TEXT,                          -- CF-Connecting-IP; NULL when absent
    details  TEXT    NOT NULL               -- a JSON object: what changed
);

-- The tenant's events, newest first, and its cursor: WHERE tenant = ? [AND (at, id) < (?, ?)]
-- ORDER BY at DESC, id DESC.
CREATE INDEX IF NOT EXISTS audit_events_by_tenant_at ON audit_events (tenant, at DESC, id DESC);
-- The same for one key: WHERE tenant = ? AND key_id = ? ...
CREATE INDEX IF NOT EXISTS audit_events_by_key_at ON audit_events (tenant, key_id, at DESC, id DESC);
-- One action's events, newest first: the settings page asks for the tenant's leaks.
CREATE INDEX IF NOT EXISTS audit_events_by_action_at ON audit_events (tenant, action, at DESC, id DESC);
