-- The job queue of the embedded deployment (team decks keep the same records in Redis), the
-- workers that claim from it and their tokens. Times are Unix milliseconds (UTC).

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id           INTEGER NOT NULL,
    username          TEXT NOT NULL,
    workflow_name     TEXT NOT NULL,
    workflow_id       TEXT,
    -- {"workflow": …, "inputs": […]}: what the worker runs.
    payload_json      TEXT NOT NULL,
    -- JSON array of "folder/file" a worker must have.
    models_json       TEXT NOT NULL DEFAULT '[]',
    prompt_id         TEXT NOT NULL UNIQUE,
    -- pending | running | succeeded | failed | cancelled
    state             TEXT NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    -- Raised by every claim; a worker's calls must carry the current value.
    fence             INTEGER NOT NULL DEFAULT 0,
    worker            TEXT,
    lease_until_ms    INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_ms        INTEGER NOT NULL,
    claimed_ms        INTEGER,
    started_ms        INTEGER,
    finished_ms       INTEGER,
    error             TEXT,
    -- JSON array of every failed delivery's reason.
    attempt_errors_json TEXT NOT NULL DEFAULT '[]',
    -- JSON array of {"name", "bytes"}.
    outputs_json      TEXT NOT NULL DEFAULT '[]'
);
-- The claim walks one person's pending jobs by priority, then age.
CREATE INDEX jobs_pending ON jobs (state, user_id, priority DESC, id);
CREATE INDEX jobs_by_user ON jobs (user_id, id DESC);
CREATE INDEX jobs_leases ON jobs (state, lease_until_ms);

-- One row: the user served last, where the round-robin goes on.
CREATE TABLE job_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    user_id  INTEGER NOT NULL
);
INSERT INTO job_cursor (id, user_id) VALUES (1, 0);

CREATE TABLE workers (
    name               TEXT PRIMARY KEY NOT NULL,
    gpu                TEXT,
    vram_mb            INTEGER,
    models_json        TEXT NOT NULL DEFAULT '[]',
    install_missing    INTEGER NOT NULL DEFAULT 0,
    -- With install_missing: the files it can install (JSON list); NULL: any file.
    installable_json   TEXT,
    current_job        INTEGER,
    last_heartbeat_ms  INTEGER NOT NULL,
    jobs_done          INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE worker_tokens (
    name        TEXT PRIMARY KEY NOT NULL,
    -- sha256 of the token, hex.
    token_hash  TEXT NOT NULL UNIQUE,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
);
