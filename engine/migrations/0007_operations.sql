-- "Make runnable" operations and their steps: stored so that an operation continues where it
-- was after a restart. Times are Unix milliseconds (UTC).

CREATE TABLE operations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             INTEGER NOT NULL,
    username            TEXT NOT NULL,
    -- admin | user: what the operation may do on its owner's behalf.
    role                TEXT NOT NULL,
    workflow_id         TEXT NOT NULL,
    workflow_name       TEXT NOT NULL,
    -- running | done | needs_you | failed
    state               TEXT NOT NULL,
    summary             TEXT,
    result_workflow_id  TEXT,
    created_ms          INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL
);

CREATE INDEX operations_by_workflow ON operations (user_id, workflow_id, state);
CREATE INDEX operations_by_state ON operations (state);

CREATE TABLE operation_steps (
    operation_id  INTEGER NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    -- pack | model | fix | check
    kind          TEXT NOT NULL,
    -- What the step is about ("model:checkpoints/x.safetensors"): one step per key.
    key           TEXT NOT NULL,
    title         TEXT NOT NULL,
    -- pending | running | done | failed | question | skipped
    state         TEXT NOT NULL,
    detail        TEXT,
    -- What to do, as JSON (see engine/src/operations/plan.rs `Action`).
    action_json   TEXT NOT NULL,
    PRIMARY KEY (operation_id, seq)
);
