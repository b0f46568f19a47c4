-- Recovery: every failure that needs a person, one row per thing that failed (a file, a preset,
-- a workflow's "make runnable", a job, ComfyUI), and each failure's time for the week's figures.
-- Times are Unix milliseconds (UTC).

CREATE TABLE failures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- download | preset | operation | job | comfyui
    source      TEXT NOT NULL,
    -- What failed, stable across attempts: a file's path, a preset id, "<user>:<workflow id>".
    key         TEXT NOT NULL,
    -- What a retry acts on: a task id, a preset id, an operation id, a job id.
    target      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    class       TEXT NOT NULL,
    -- The technical message (the sentence and actions are derived from it when read).
    detail      TEXT NOT NULL,
    user_id     INTEGER,
    -- open | resolved | dismissed
    state       TEXT NOT NULL,
    count       INTEGER NOT NULL,
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    UNIQUE (source, key)
);

CREATE INDEX failures_by_state ON failures (state, last_ms);

CREATE TABLE failure_events (
    failure_id  INTEGER NOT NULL,
    class       TEXT NOT NULL,
    at_ms       INTEGER NOT NULL
);

CREATE INDEX failure_events_by_time ON failure_events (at_ms);
