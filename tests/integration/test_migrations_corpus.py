"""The corpus (tests/fixtures/migrations_corpus, 48 realistic Diesel-layout migrations): the
schema conveyor builds equals the one psql builds from the same up.sql files, and reverting
everything gives back an empty database's schema."""

from __future__ import annotations

import pytest

from conveyor.migrations.discovery import discover
from tests.integration.test_migrations_common import (
    CORPUS,
    DIESEL_SETUP_SQL,
    cli,
    diesel_version,
    dump_schema,
    psql,
    rows,
)

pytestmark = pytest.mark.integration


def test_corpus_is_realistic_and_diverse():
    ms = discover(CORPUS)
    assert len(ms) >= 40
    names = [m.name for m in ms]
    assert any(n[4] == "-" for n in names) and any(n[:14].isdigit() for n in names)
    assert any(len(m.version) == 18 for m in ms)
    assert not all(m.run_in_transaction for m in ms)
    text = "".join(m.up_sql for m in ms)
    for needle in ("REFERENCES", "CHECK (", "CREATE TYPE", "AS ENUM", "CREATE FUNCTION",
                   "CREATE TRIGGER", "$$", "$body$", "CREATE VIEW", "CREATE INDEX CONCURRENTLY",
                   "BEGIN ATOMIC", "CREATE DOMAIN", "CREATE PROCEDURE"):
        assert needle in text, needle
    assert all(m.down_sql for m in ms)


def test_corpus_schema_equals_psql_and_revert_all_gives_empty_schema(pg_server, pg_url, capsys):
    migrations = discover(CORPUS)
    empty_url = pg_server.createdb("t_mig_corpus_empty")
    psql_url = pg_server.createdb("t_mig_corpus_psql")

    # reference: psql applies each up.sql in order (one transaction per file unless the
    # migration has run_in_transaction = false), plus Diesel's table made by Diesel's SQL
    psql(psql_url, DIESEL_SETUP_SQL)
    for m in migrations:
        psql(psql_url, file=m.up_path, single_transaction=m.run_in_transaction)
        psql(psql_url, f"INSERT INTO __diesel_schema_migrations (version)"
                       f" VALUES ('{diesel_version(m.name)}')")

    code, out, err = cli(capsys, "run", "--database-url", pg_url,
                         "--migration-dir", str(CORPUS))
    assert code == 0, err
    assert f"{len(migrations)} migrations applied" in out

    assert dump_schema(pg_url) == dump_schema(psql_url)
    assert rows(pg_url, "SELECT version FROM __diesel_schema_migrations ORDER BY 1") == \
        rows(psql_url, "SELECT version FROM __diesel_schema_migrations ORDER BY 1")

    # the schema works: triggers, enum, functions
    psql(pg_url, """
        INSERT INTO users (email, display_name, password_hash) VALUES ('a@example.com', 'A', 'x');
        INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme');
        INSERT INTO memberships (organization_id, user_id, role) VALUES (1, 1, 'owner');
        INSERT INTO projects (organization_id, key, name) VALUES (1, 'WEB', 'Web');
        INSERT INTO tasks (project_id, title, reporter_id, status) VALUES (1, 'first', 1, 'blocked');
        INSERT INTO tasks (project_id, title, reporter_id) VALUES (1, 'second', 1);
        UPDATE tasks SET assignee_id = 1 WHERE number = 2;
    """)
    assert rows(pg_url, "SELECT number, status::text FROM tasks ORDER BY id") == \
        [(1, "blocked"), (2, "todo")]
    assert rows(pg_url, "SELECT count(*) FROM audit_log")[0][0] >= 3
    assert rows(pg_url, "SELECT kind::text FROM notifications")[0][0] == "assigned"
    psql(pg_url, "TRUNCATE users, organizations CASCADE; TRUNCATE audit_log")

    code, out, err = cli(capsys, "revert", "--all", "--database-url", pg_url,
                         "--migration-dir", str(CORPUS))
    assert code == 0, err
    assert f"{len(migrations)} migrations reverted" in out
    assert rows(pg_url, "SELECT count(*) FROM __diesel_schema_migrations")[0][0] == 0
    assert rows(pg_url, "SELECT count(*) FROM __conveyor_migrations")[0][0] == 0
    # Diesel's table stays (diesel_cli keeps it too); everything else is gone
    both = ("__conveyor_migrations", "__diesel_schema_migrations")
    assert dump_schema(pg_url, exclude=both) == dump_schema(empty_url, exclude=both)

    # and again, from the reverted state: the same schema as the first time
    code, out, err = cli(capsys, "run", "--database-url", pg_url,
                         "--migration-dir", str(CORPUS))
    assert code == 0, err
    assert dump_schema(pg_url) == dump_schema(psql_url)
