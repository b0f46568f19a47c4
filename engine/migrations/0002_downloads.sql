-- Downloads: one task per file, the files verified on download, and the presets asked for.
-- Times are Unix milliseconds (UTC). Paths are relative to the models folder.

CREATE TABLE download_tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    url             TEXT NOT NULL,
    path            TEXT NOT NULL UNIQUE,
    expected_size   INTEGER,
    checksum_algo   TEXT,
    checksum_value  TEXT,
    -- From the server, so a restart can resume with If-Range.
    etag            TEXT,
    last_modified   TEXT,
    total_bytes     INTEGER,
    linked_sha256   TEXT,
    bytes_done      INTEGER NOT NULL DEFAULT 0,
    -- queued | downloading | paused | failed
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    -- Lower runs first: small files of a preset before big ones.
    priority        INTEGER NOT NULL DEFAULT 0,
    -- A transient failure (dead host) waits until then.
    not_before_ms   INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX download_tasks_by_state ON download_tasks (state, priority, id);

-- A file comfydeck downloaded and verified. Size and mtime let start-up trust it without
-- re-hashing gigabytes; a file changed behind our back no longer counts as installed.
CREATE TABLE installed_files (
    path          TEXT PRIMARY KEY NOT NULL,
    size          INTEGER NOT NULL,
    mtime_ms      INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    verified_by   TEXT NOT NULL,
    url           TEXT NOT NULL,
    installed_ms  INTEGER NOT NULL
);

-- Presets the user asked to install (and not removed since); files shared between presets
-- are kept while any of these still needs them.
CREATE TABLE preset_installs (
    preset_id     TEXT PRIMARY KEY NOT NULL,
    version       TEXT,
    requested_ms  INTEGER NOT NULL,
    installed_ms  INTEGER
);

CREATE TABLE download_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    preset_id    TEXT NOT NULL,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER,
    -- running | installed | failed | cancelled | removed
    outcome      TEXT NOT NULL,
    bytes        INTEGER NOT NULL DEFAULT 0,
    message      TEXT
);
CREATE INDEX download_history_by_preset ON download_history (preset_id, started_ms);
