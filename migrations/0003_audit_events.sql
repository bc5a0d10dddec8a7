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

-- The tenant's events, newest first, and its cursor.
CREATE INDEX IF NOT EXISTS audit_events_by_tenant_at ON audit_events (tenant, at DESC, id DESC);
-- The same for one key.
CREATE INDEX IF NOT EXISTS audit_events_by_key_at ON audit_events (tenant, key_id, at DESC, id DESC);
-- One action's events, newest first: the settings page asks for the tenant's leaks.
CREATE INDEX IF NOT EXISTS audit_events_by_action_at ON audit_events (tenant, action, at DESC, id DESC);
