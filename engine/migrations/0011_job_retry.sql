-- A job put back in line after a transient failure waits until this time (the backoff).
ALTER TABLE jobs ADD COLUMN retry_at_ms INTEGER;
