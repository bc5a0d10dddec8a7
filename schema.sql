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
    allowed_ips  TEXT,                          -- NULL: any client address; else canonical CIDR
                                                -- blocks, comma-separated
    last_used_ip      TEXT,                     -- with last_used_at; canonical text
    last_used_country TEXT                      -- request.cf.country, e.g. DE
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
-- Usage per key: one row per key and UTC hour that saw a request, written by the usage queue's
-- consumer (one D1 batch per queue batch); rows older than 90 days are removed by the daily
-- Cron Trigger. The report reads one key's range:
-- WHERE tenant = ? AND key_id = ? AND hour_start >= ? AND hour_start < ? (the primary key).
CREATE TABLE IF NOT EXISTS api_key_usage (
    tenant     TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    hour_start INTEGER NOT NULL,             -- milliseconds, a whole UTC hour
    allowed    INTEGER NOT NULL DEFAULT 0,
    forbidden  INTEGER NOT NULL DEFAULT 0,   -- the key lacked the scope
    ip_denied  INTEGER NOT NULL DEFAULT 0,   -- the client was outside the key's allow-list
    revoked    INTEGER NOT NULL DEFAULT 0,
    expired    INTEGER NOT NULL DEFAULT 0,   -- past expiresAt, or a secret a rotation ended
    PRIMARY KEY (tenant, key_id, hour_start)
) WITHOUT ROWID;

-- The cron's removal of rows past the retention: WHERE hour_start < ?.
CREATE INDEX IF NOT EXISTS api_key_usage_by_hour ON api_key_usage (hour_start);

-- Queue messages already counted, so that a message delivered again is not counted twice;
-- the cron removes ids older than 4 days.
CREATE TABLE IF NOT EXISTS usage_messages (
    id          TEXT    NOT NULL PRIMARY KEY,  -- the Queues message id
    received_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The cron's removal: WHERE received_at < ?.
CREATE INDEX IF NOT EXISTS usage_messages_by_time ON usage_messages (received_at);
