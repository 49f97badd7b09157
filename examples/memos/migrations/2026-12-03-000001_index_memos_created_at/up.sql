-- Serves GET /memos (ORDER BY created_at DESC, id DESC).
CREATE INDEX memos_created_at_idx ON memos (created_at DESC, id DESC);
