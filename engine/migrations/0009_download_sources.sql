-- Other places a file can be downloaded from (a preset's `mirrors:`, a workflow model's
-- mirrors, Hugging Face's own URL behind HF_ENDPOINT), tried in order after a not-found or a
-- host whose circuit opened. `source_index` is the source in use, so a restart goes on there.

ALTER TABLE download_tasks ADD COLUMN mirrors TEXT NOT NULL DEFAULT '[]';
ALTER TABLE download_tasks ADD COLUMN source_index INTEGER NOT NULL DEFAULT 0;
