-- Generations from the Generate page, and the form values last used per workflow.
-- Times are Unix milliseconds (UTC).

CREATE TABLE generations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id     TEXT NOT NULL,
    workflow_name   TEXT NOT NULL,
    -- JSON list of {node_id, input, value}: what the form sent.
    inputs_json     TEXT NOT NULL,
    prompt_id       TEXT NOT NULL UNIQUE,
    -- queued | running | succeeded | failed | interrupted | cancelled
    status          TEXT NOT NULL,
    error           TEXT,
    created_ms      INTEGER NOT NULL,
    started_ms      INTEGER,
    finished_ms     INTEGER,
    -- JSON list of RunOutput.
    outputs_json    TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX generations_by_workflow ON generations (workflow_id, id);
CREATE INDEX generations_by_status ON generations (status);

CREATE TABLE generate_form_values (
    workflow_id     TEXT PRIMARY KEY,
    inputs_json     TEXT NOT NULL,
    updated_ms      INTEGER NOT NULL
);
