-- Restore points: what a preset install is about to add or replace in the models folder,
-- recorded before it starts, so "roll back" removes exactly that and puts back what it replaced.
-- Times are Unix milliseconds (UTC).

CREATE TABLE restore_points (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- preset
    kind            TEXT NOT NULL,
    -- A preset id.
    target          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    -- Whether the preset was already asked for before (a rollback then keeps the request).
    was_requested   INTEGER NOT NULL,
    -- kept | rolled_back
    state           TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    rolled_back_ms  INTEGER,
    -- What the rollback did and what it kept, in words.
    note            TEXT
);

CREATE TABLE restore_items (
    point_id  INTEGER NOT NULL,
    -- Relative to the models folder.
    path      TEXT NOT NULL,
    -- created | replaced
    change    TEXT NOT NULL,
    -- For a replaced file: its hard link kept under data/restore/<point>/ (no copy).
    backup    TEXT,
    PRIMARY KEY (point_id, path)
);
