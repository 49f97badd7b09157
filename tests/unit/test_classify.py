"""Expand/contract classification of pending migrations (on the lint's lexer), the refusal's
message, and the rollback guard's search of the history."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conveyor.migrations.classify import CONTRACT, EXPAND, classify, classify_sql, refusal
from conveyor.steps.classify import contracts_since

EXPANDS = [
    "CREATE TABLE tags (id bigint PRIMARY KEY, name text NOT NULL);",
    "ALTER TABLE notes ADD COLUMN color text;",
    "ALTER TABLE notes ADD COLUMN n int NOT NULL DEFAULT 0;",
    "ALTER TABLE public.notes ADD COLUMN IF NOT EXISTS slug text;",
    "CREATE INDEX CONCURRENTLY notes_title ON notes (title);",
    "ALTER TABLE notes ADD CONSTRAINT title_len CHECK (length(title) < 200) NOT VALID;",
    "ALTER TABLE notes VALIDATE CONSTRAINT title_len;",
    "ALTER TABLE notes ALTER COLUMN body DROP NOT NULL;",
    "ALTER TABLE notes ALTER COLUMN body SET DEFAULT '';",
    "ALTER TABLE notes DROP CONSTRAINT title_len;",
    "DROP INDEX CONCURRENTLY notes_title;",
    "UPDATE notes SET color = 'red' WHERE color IS NULL;",
    "CREATE OR REPLACE VIEW v AS SELECT 1; -- DROP TABLE notes;",
    "COMMENT ON TABLE notes IS 'drop column x';",
]
CONTRACTS = [
    ("ALTER TABLE notes DROP COLUMN color;", "drop column"),
    ("ALTER TABLE notes DROP color;", "drop column"),
    ("ALTER TABLE notes RENAME COLUMN body TO text;", "rename column"),
    ("ALTER TABLE notes RENAME TO memos;", "rename table"),
    ("ALTER TABLE notes ALTER COLUMN id TYPE bigint;", "type change"),
    ("ALTER TABLE notes ALTER COLUMN id SET DATA TYPE bigint;", "type change"),
    ("ALTER TABLE notes ALTER COLUMN title SET NOT NULL;", "set not null"),
    ("ALTER TABLE notes ADD COLUMN n int NOT NULL;", "add column not null"),
    ("ALTER TABLE notes ALTER COLUMN body DROP DEFAULT;", "drop default"),
    ("DROP TABLE IF EXISTS notes;", "drop table"),
    ("DROP VIEW v;", "drop object"),
    ("TRUNCATE notes;", "truncate"),
    ("ALTER TABLE notes ADD COLUMN a text, DROP COLUMN b;", "drop column"),
]


@pytest.mark.parametrize("sql", EXPANDS)
def test_expand(sql):
    c = classify_sql("m", sql)
    assert (c.kind, c.findings) == (EXPAND, ())


@pytest.mark.parametrize(("sql", "what"), CONTRACTS)
def test_contract(sql, what):
    c = classify_sql("m", sql)
    assert c.kind == CONTRACT
    assert [f.what for f in c.findings] == [what]


def test_the_refusal_names_the_statement_its_line_and_the_split():
    ms = [SimpleNamespace(name="2027-01-01-000001_ok", up_sql="ALTER TABLE t ADD COLUMN a text;"),
          SimpleNamespace(name="2027-01-02-000001_drop",
                          up_sql="-- cleanup\nUPDATE t SET a = 1;\nALTER TABLE t\n  DROP COLUMN b;\n")]
    result = classify(ms)
    assert [c.kind for c in result] == [EXPAND, CONTRACT]
    msg = refusal(result)
    assert msg is not None
    assert "2027-01-02-000001_drop/up.sql:3: ALTER TABLE t DROP COLUMN b;" in msg
    assert "in a later deploy" in msg
    assert refusal(result[:1]) is None


def test_contracts_since_the_target_deployment():
    entries = [
        {"id": "d1", "image": "r@sha256:1", "migrations_applied": ["m1"]},
        {"id": "d2", "image": "r@sha256:2", "migrations_applied": ["m2"],
         "details": {"migration_classes": {"m2": "expand"}}},
        {"id": "d3", "image": "r@sha256:3", "migrations_applied": ["m3"],
         "details": {"migration_classes": {"m3": "contract"}}},
        {"id": "d4", "image": "r@sha256:3", "migrations_applied": [], "details": {}},
    ]
    assert contracts_since(entries, "r@sha256:2", "d2") == [("d3", "m3")]
    assert contracts_since(entries, "r@sha256:1", None) == [("d3", "m3")]
    assert contracts_since(entries, "r@sha256:3", "d3") == []
