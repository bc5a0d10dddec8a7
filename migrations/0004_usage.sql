-- Usage per key (README, "Usage"): hourly counts per outcome, where each key was last used
-- from, and the queue messages already counted. Written by the usage queue's consumer, one D1
-- batch per queue batch; hourly rows older than 90 days and message ids older than 4 days are
-- removed by the daily Cron Trigger.

ALTER TABLE api_keys ADD COLUMN last_used_ip TEXT;       -- with last_used_at; canonical text
ALTER TABLE api_keys ADD COLUMN last_used_country TEXT;  -- request.cf.country, e.g. DE

-- One row per key and UTC hour that saw a request. The report reads one key's range:
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

-- Queue messages already counted, so that a message delivered again is not counted twice.
CREATE TABLE IF NOT EXISTS usage_messages (
    id          TEXT    NOT NULL PRIMARY KEY,  -- the Queues message id
    received_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The cron's removal: WHERE received_at < ?.
CREATE INDEX IF NOT EXISTS usage_messages_by_time ON usage_messages (received_at);
