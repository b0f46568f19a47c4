-- The gallery: one row per output file (image, video, audio) under ComfyUI's output folder.
-- Paths are relative to that folder, '/'-separated. Times are Unix milliseconds (UTC).
-- Size and mtime let the start-up scan skip files it has already read.

CREATE TABLE gallery_items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    path          TEXT NOT NULL UNIQUE,
    -- image | video | audio
    kind          TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    mtime_ms      INTEGER NOT NULL,
    width         INTEGER,
    height        INTEGER,
    positive      TEXT,
    negative      TEXT,
    seed          INTEGER,
    model         TEXT,
    -- The file embeds a ComfyUI workflow or API prompt (read from the file when opened).
    has_workflow  INTEGER NOT NULL DEFAULT 0,
    -- Lower-cased file name, prompts and model: what the text filter searches.
    search_text   TEXT NOT NULL DEFAULT '',
    -- The ComfyUI prompt that wrote the file, when comfydeck saw it finish.
    prompt_id     TEXT,
    indexed_ms    INTEGER NOT NULL
);
-- Newest first, with or without a kind filter; id breaks ties so paging is stable.
CREATE INDEX gallery_items_newest ON gallery_items (mtime_ms DESC, id DESC);
CREATE INDEX gallery_items_kind_newest ON gallery_items (kind, mtime_ms DESC, id DESC);
