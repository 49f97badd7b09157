DROP INDEX memos_created_at_idx;
