-- A constant default: PostgreSQL 11+ adds the column without rewriting the table.
ALTER TABLE notes ADD COLUMN pinned boolean NOT NULL DEFAULT false;
