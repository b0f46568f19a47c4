-- comfydeck's first schema. Times are Unix milliseconds (UTC).

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE activity (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX activity_by_time ON activity (at_ms);
CREATE INDEX activity_by_kind_time ON activity (kind, at_ms);

-- Only the SHA-256 of a session token is stored: a copy of the database opens no session.
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_ms);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER,
    revoked_ms   INTEGER
);
