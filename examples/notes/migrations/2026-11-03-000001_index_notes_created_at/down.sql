-- Single statement, outside a transaction (see metadata.toml).
DROP INDEX CONCURRENTLY IF EXISTS notes_created_at_idx;
