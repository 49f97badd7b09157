-- Serves GET /notes (ORDER BY created_at DESC, id DESC) and is built without
-- blocking writes. CONCURRENTLY cannot run inside a transaction block, so this
-- migration runs outside one (metadata.toml: run_in_transaction = false), and the
-- file holds a single statement: several statements sent as one query string would
-- form an implicit transaction again.
-- Caveat: an interrupted concurrent build leaves an INVALID index of this name that
-- IF NOT EXISTS then skips; drop it (down.sql) and run this again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_created_at_idx ON notes (created_at DESC, id DESC);
