-- A constant default: PostgreSQL 11+ adds the column without rewriting the table.
ALTER TABLE memos ADD COLUMN done boolean NOT NULL DEFAULT false;
