-- People: accounts with roles, and who owns what. Times are Unix milliseconds (UTC).
-- The deck's one password of earlier versions becomes the user `admin` (id 1): the generated
-- password's hash moves here now; an ACCESS_PASSWORD is hashed into it at start-up.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Lower-cased on the way in, so uniqueness is case-insensitive.
    username       TEXT NOT NULL UNIQUE,
    -- admin | user
    role           TEXT NOT NULL,
    -- argon2 (PHC string); NULL until a password is set (open mode's admin).
    password_hash  TEXT,
    created_ms     INTEGER NOT NULL,
    last_login_ms  INTEGER,
    disabled       INTEGER NOT NULL DEFAULT 0,
    -- system | dark | light; NULL follows the deck's theme setting.
    theme          TEXT
);

INSERT INTO users (id, username, role, password_hash, created_ms)
VALUES (
    1, 'admin', 'admin',
    (SELECT value FROM settings WHERE key = 'auth.generated_password_hash'),
    CAST(strftime('%s', 'now') AS INTEGER) * 1000
);
DELETE FROM settings WHERE key = 'auth.generated_password_hash';

-- Sessions and tokens of earlier versions were opened with admin's password.
ALTER TABLE sessions ADD COLUMN user_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX sessions_by_user ON sessions (user_id);
ALTER TABLE api_tokens ADD COLUMN user_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

-- NULL: the deck's own entries (start-up, downloads, ComfyUI), which only admins see.
ALTER TABLE activity ADD COLUMN user_id INTEGER;
CREATE INDEX activity_by_user_time ON activity (user_id, at_ms);

ALTER TABLE generations ADD COLUMN user_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX generations_by_user ON generations (user_id, id);

-- Files no run of comfydeck produced belong to admin.
ALTER TABLE gallery_items ADD COLUMN user_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX gallery_items_user_newest ON gallery_items (user_id, mtime_ms DESC, id DESC);

-- Every prompt comfydeck submits to ComfyUI, and who submitted it: runs from the Workflows
-- page, generations and API calls alike. Outputs, cancels and history are checked against it.
CREATE TABLE prompt_owners (
    prompt_id   TEXT PRIMARY KEY NOT NULL,
    user_id     INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX prompt_owners_by_user ON prompt_owners (user_id);
