"""Migration lint: squawk (the real binary from the squawk-cli dependency) plus conveyor's checks.

Each migration is written in Diesel's layout under tmp_path and read with the real discovery.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.migrations import lint
from conveyor.migrations.discovery import discover
from conveyor.migrations.lint import LintError, lint_migrations, split_statements
from conveyor.migrations.lint_cli import main

EXISTING = "-- table users exists in the database already\n"


def write(root: Path, name: str, up: str, *, transactional: bool = True) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "up.sql").write_text(up, encoding="utf-8")
    (d / "down.sql").write_text("-- nothing\n", encoding="utf-8")
    if not transactional:
        (d / "metadata.toml").write_text("run_in_transaction = false\n", encoding="utf-8")
    return d


def lint_sql(tmp_path: Path, up: str, *, transactional: bool = True, **kw) -> lint.LintReport:
    write(tmp_path / "migrations", "2024-01-31-120000_change", up, transactional=transactional)
    return lint_migrations(discover(tmp_path / "migrations"), **kw)


def rules(report: lint.LintReport) -> dict[str, str]:
    return {f.rule: f.severity for f in report.findings}


# --------------------------------------------------------------------------- operation classes

CASES = [
    # (id, up.sql on the existing table `users`, rule, severity)
    ("drop-table", "DROP TABLE users;", "ban-drop-table", "destructive"),
    ("drop-column", "ALTER TABLE users DROP COLUMN email;", "ban-drop-column", "destructive"),
    ("drop-schema", "DROP SCHEMA reporting CASCADE;", "ban-drop-schema", "destructive"),
    ("drop-database", "DROP DATABASE app;", "ban-drop-database", "destructive"),
    ("truncate", "TRUNCATE users;", "truncate", "destructive"),
    ("truncate-table-only", "TRUNCATE TABLE ONLY public.users RESTART IDENTITY;", "truncate",
     "destructive"),
    ("truncate-cascade", "TRUNCATE users CASCADE;", "ban-truncate-cascade", "destructive"),
    ("delete-without-where", "DELETE FROM users;", "delete-without-where", "destructive"),
    ("delete-in-cte", "WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone;",
     "delete-without-where", "destructive"),
    ("drop-owned", "DROP OWNED BY legacy_role;", "drop-owned", "destructive"),
    ("drop-type-cascade", "DROP TYPE mood CASCADE;", "drop-type-cascade", "destructive"),
    ("drop-type", "DROP TYPE mood;", "ban-drop-type", "warning"),
    ("update-without-where", "UPDATE users SET active = true;", "update-without-where",
     "warning"),
    ("add-column-not-null", "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;",
     "adding-required-field", "warning"),
    ("create-index", "CREATE INDEX users_email_idx ON users (email);",
     "require-concurrent-index-creation", "warning"),
    ("create-unique-index", "CREATE UNIQUE INDEX users_email_key ON public.users (email);",
     "require-concurrent-index-creation", "warning"),
    ("alter-column-type", "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
     "changing-column-type", "warning"),
    ("foreign-key", ("ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) "
     "REFERENCES orgs (id);"), "adding-foreign-key-constraint", "warning"),
    ("check", "ALTER TABLE users ADD CONSTRAINT users_age_ck CHECK (age >= 0);",
     "constraint-missing-not-valid", "warning"),
    ("rename-table", "ALTER TABLE users RENAME TO accounts;", "renaming-table", "warning"),
    ("rename-column", "ALTER TABLE users RENAME COLUMN email TO email_address;",
     "renaming-column", "warning"),
    ("set-not-null", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
     "adding-not-nullable-field", "warning"),
    ("vacuum-full", "VACUUM FULL users;", "vacuum-full", "warning"),
    ("set-tablespace", "ALTER TABLE users SET TABLESPACE slow;", "table-rewrite", "warning"),
    ("refresh-materialized-view", "REFRESH MATERIALIZED VIEW user_stats;",
     "refresh-materialized-view", "warning"),
    ("volatile-default", "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
     "adding-field-with-default", "warning"),
]


@pytest.mark.parametrize(("up", "rule", "severity"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_operation_class_is_caught_and_classified(tmp_path, up, rule, severity):
    report = lint_sql(tmp_path, EXISTING + up + "\n")
    found = rules(report)
    assert found.get(rule) == severity, report.render_text()
    f = next(f for f in report.findings if f.rule == rule)
    assert f.version == "20240131120000"
    assert f.migration == "2024-01-31-120000_change"
    assert f.file.endswith("up.sql")
    assert f.line == 2 and f.column is not None and f.column >= 1
    assert f.message and f.hint and f.statement
    expected = 2 if severity in ("destructive", "error") or "error" in found.values() else 0
    assert report.exit_code() == expected


@pytest.mark.parametrize("up", [
    "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL DEFAULT 0;",
    "ALTER TABLE users ADD COLUMN nickname text;",
    ("ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id) "
    "NOT VALID;"),
    "ALTER TABLE users ADD CONSTRAINT users_age_ck CHECK (age >= 0) NOT VALID;",
    "ALTER TABLE users VALIDATE CONSTRAINT users_age_ck;",
    "DELETE FROM users WHERE id = 1;",
    "UPDATE users SET active = true WHERE id IN (SELECT id FROM banned);",
    "INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET active = true;",
    "SELECT * FROM users FOR UPDATE;",
], ids=["not-null-with-default", "nullable-column", "fk-not-valid", "check-not-valid",
        "validate", "delete-with-where", "update-with-where", "upsert", "select-for-update"])
def test_safe_statements_pass(tmp_path, up):
    report = lint_sql(tmp_path, EXISTING + up + "\n")
    assert report.findings == [], report.render_text()
    assert report.exit_code(strict=True) == 0


def test_update_with_where_only_in_subquery_is_flagged(tmp_path):
    report = lint_sql(tmp_path, "UPDATE users SET org = (SELECT id FROM orgs WHERE name = 'x');")
    assert rules(report) == {"update-without-where": "warning"}


# --------------------------------------------------------------------------- clean migration

CLEAN = """\
-- a new feature: tables, indexes on them, a trigger function, a view
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    note text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_idx ON orders (user_id);
CREATE UNIQUE INDEX orders_note_key ON orders (note);
ALTER TABLE orders ADD COLUMN status text NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_status_ck CHECK (status <> '');
ALTER TABLE users ADD COLUMN last_order_id bigint;
CREATE FUNCTION orders_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION orders_touch();
CREATE VIEW recent_orders AS SELECT * FROM orders WHERE created_at > now() - interval '1 day';
INSERT INTO orders (user_id, status) SELECT id, 'new' FROM users WHERE false;
"""


def test_clean_additive_migration_passes(tmp_path, capsys):
    write(tmp_path / "migrations", "2024-01-31-120000_orders", CLEAN)
    report = lint_migrations(discover(tmp_path / "migrations"))
    assert report.findings == [], report.render_text()
    assert main(["--migration-dir", str(tmp_path / "migrations")]) == 0
    assert main(["--migration-dir", str(tmp_path / "migrations"), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "no findings in 1 migration" in out


# --------------------------------------------------------------------------- new tables

def test_table_created_in_an_earlier_pending_migration_is_new(tmp_path):
    root = tmp_path / "migrations"
    write(root, "2024-01-01-000000_create", "CREATE TABLE events (id bigint, kind text);")
    write(root, "2024-01-02-000000_index",
          "CREATE INDEX events_kind_idx ON events (kind);\n"
          "ALTER TABLE events ADD COLUMN at timestamptz NOT NULL;\n"
          "ALTER TABLE events ALTER COLUMN kind TYPE varchar(20);\n"
          "ALTER TABLE events RENAME TO audit_events;\n"
          "CREATE INDEX audit_events_at_idx ON audit_events (at);\n"
          "DELETE FROM audit_events;\n"
          "CREATE INDEX users_idx ON users (id);\n")
    report = lint_migrations(discover(root))
    assert [(f.rule, f.line) for f in report.findings] == [
        ("require-concurrent-index-creation", 7)], report.render_text()


def test_whole_directory_lints_each_migration_on_its_own(tmp_path, capsys):
    """Without VERSIONs the CLI lints the history: tables of earlier migrations hold data."""
    root = tmp_path / "migrations"
    write(root, "2024-01-01-000000_create", "CREATE TABLE events (id bigint, kind text);")
    write(root, "2024-01-02-000000_index", "CREATE INDEX events_kind_idx ON events (kind);")
    def run(*extra: str) -> tuple[int, list[str]]:
        code = main(["--migration-dir", str(root), "--json", "--strict", *extra])
        return code, [f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]]

    assert run() == (1, ["require-concurrent-index-creation"])
    assert run("--all") == (1, ["require-concurrent-index-creation"])
    assert run("20240101000000", "20240102000000") == (0, [])  # one set: events is new
    assert lint_migrations(discover(root), one_set=False).exit_code(strict=True) == 1


def test_only_the_linted_set_counts(tmp_path):
    """Linting just the second migration: its table is not created in the set, so it exists."""
    root = tmp_path / "migrations"
    write(root, "2024-01-01-000000_create", "CREATE TABLE events (id bigint, kind text);")
    write(root, "2024-01-02-000000_index", "CREATE INDEX events_kind_idx ON events (kind);")
    pending = [m for m in discover(root) if m.version == "20240102000000"]
    assert rules(lint_migrations(pending)) == {"require-concurrent-index-creation": "warning"}


def test_create_if_not_exists_of_an_existing_table_is_not_new(tmp_path):
    up = "CREATE TABLE IF NOT EXISTS users (id bigint);\nCREATE INDEX users_idx ON users (id);\n"
    assert lint_sql(tmp_path / "a", up).findings == []
    report = lint_sql(tmp_path / "b", up, existing_tables=["public.users"])
    assert rules(report) == {"require-concurrent-index-creation": "warning"}


def test_new_materialized_view_may_be_refreshed(tmp_path):
    up = "CREATE MATERIALIZED VIEW user_stats AS SELECT count(*) FROM users;\n" \
         "REFRESH MATERIALIZED VIEW user_stats;\n"
    assert lint_sql(tmp_path, up).findings == []


def test_dropped_table_is_no_longer_new(tmp_path):
    root = tmp_path / "migrations"
    write(root, "2024-01-01-000000_a",
          "CREATE TABLE tmp_import (id bigint);\nDROP TABLE tmp_import;")
    assert lint_migrations(discover(root)).findings == []


# --------------------------------------------------------------------------- transactions

@pytest.mark.parametrize("up", [
    "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
    ("SET lock_timeout = '2s';\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx "
    "ON users (email);\n"),
], ids=["alone", "with-other-statements"])
def test_concurrently_in_transactional_migration_is_an_error(tmp_path, up):
    """squawk 2.70 reports this only when the file holds more than one statement; conveyor's
    own check reports it always, under one rule id."""
    report = lint_sql(tmp_path, up)
    [f] = report.findings
    assert (f.rule, f.severity, f.source) == ("concurrently-in-transaction", "error", "conveyor")
    assert f.line == up.count("\n")
    assert "run_in_transaction = false" in f.hint
    assert report.exit_code() == 2
    assert main(["--migration-dir", str(tmp_path / "migrations"), "--json"]) == 2


@pytest.mark.parametrize("up", [
    "DROP INDEX CONCURRENTLY users_email_idx;",
    "REINDEX INDEX CONCURRENTLY users_email_idx;",
    "ALTER TABLE measurements DETACH PARTITION measurements_2020 CONCURRENTLY;",
], ids=["drop-index", "reindex", "detach-partition"])
def test_other_concurrently_in_transaction_is_an_error(tmp_path, up):
    report = lint_sql(tmp_path, up)
    assert rules(report).get("concurrently-in-transaction") == "error", report.render_text()
    assert "run_in_transaction = false" in report.findings[0].hint


def test_concurrently_error_even_on_a_new_table(tmp_path):
    report = lint_sql(tmp_path,
                      "CREATE TABLE t (id bigint);\nCREATE INDEX CONCURRENTLY ti ON t (id);")
    assert {f.severity for f in report.findings} == {"error"}


def test_vacuum_in_transaction_is_an_error(tmp_path):
    assert rules(lint_sql(tmp_path, "VACUUM users;")) == {"not-in-transaction-block": "error"}


def test_concurrently_alone_in_non_transactional_migration_passes(tmp_path):
    up = "-- an index on a big table\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx " \
         "ON users (email);\n"
    report = lint_sql(tmp_path, up, transactional=False)
    assert report.findings == [], report.render_text()


def test_concurrently_with_other_statements_in_non_transactional_migration_fails(tmp_path):
    """The whole up.sql is one simple-protocol query: several statements = implicit transaction."""
    up = "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n"
    report = lint_sql(tmp_path, up, transactional=False)
    [f] = report.findings
    assert (f.rule, f.severity, f.line) == ("non-transactional-not-alone", "error", 2)


def test_begin_commit_inside_transactional_migration_warns(tmp_path):
    report = lint_sql(tmp_path, "BEGIN;\nALTER TABLE users ADD COLUMN n text;\nCOMMIT;\n")
    assert rules(report) == {"transaction-nesting": "warning"}


# --------------------------------------------------------------------------- no false positives

FUNCTION_BODIES = """\
CREATE OR REPLACE FUNCTION purge_sessions() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    DELETE FROM sessions WHERE user_id = OLD.id;
    DELETE FROM session_cache;
    UPDATE users SET active = false;
    TRUNCATE audit;
    EXECUTE 'DROP TABLE ' || quote_ident(TG_ARGV[0]);
    RETURN OLD;
END
$body$;
CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS $$ DROP TABLE users; SELECT 42 $$;
CREATE FUNCTION total() RETURNS bigint LANGUAGE sql
BEGIN ATOMIC
    DELETE FROM scratch;
    SELECT CASE WHEN true THEN 1 ELSE 2 END;
END;
COMMENT ON TABLE users IS 'DROP TABLE users; TRUNCATE users; DELETE FROM users';
INSERT INTO notes (body) VALUES (E'it\\'s; DROP TABLE users; --'), ('a ''; DELETE FROM users');
/* DROP TABLE users; /* nested; */ TRUNCATE users; */
-- DELETE FROM users;
SELECT "DROP TABLE users;" FROM users WHERE true;
CREATE TRIGGER purge AFTER DELETE OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION purge_sessions();
GRANT SELECT, UPDATE, DELETE ON users TO app;
"""


def test_statements_inside_strings_bodies_and_comments_are_not_flagged(tmp_path):
    report = lint_sql(tmp_path, FUNCTION_BODIES)
    assert report.findings == [], report.render_text()


def test_split_statements_respects_quotes_comments_and_bodies():
    stmts = split_statements(FUNCTION_BODIES)
    firsts = [s.tokens[0].text.upper() + " " + s.tokens[1].text.upper() for s in stmts]
    assert firsts == ["CREATE OR", "CREATE FUNCTION", "CREATE FUNCTION", "COMMENT ON",
                      "INSERT INTO", "SELECT \"DROP TABLE USERS;\"", "CREATE TRIGGER",
                      "GRANT SELECT"]
    assert split_statements("  -- only a comment\n/* and another */\n") == []
    [s] = split_statements("SELECT 1")
    assert s.text("SELECT 1") == "SELECT 1"


def test_unterminated_quote_does_not_crash(tmp_path):
    stmts = split_statements("SELECT 'oops; DROP TABLE users;")
    assert len(stmts) == 1


# --------------------------------------------------------------------------- positions

def test_line_and_column_count_characters_not_bytes(tmp_path):
    up = "-- héllo wörld\nSELECT 'ééé'; DROP TABLE users;\r\nSELECT 1;\n"
    [f] = lint_sql(tmp_path, up).findings
    assert (f.rule, f.line, f.column) == ("ban-drop-table", 2, 15)
    assert f.statement == "DROP TABLE users;"


def test_squawk_ignore_comment_is_honoured(tmp_path):
    up = "-- squawk-ignore ban-drop-column\nALTER TABLE users DROP COLUMN legacy;\n"
    assert lint_sql(tmp_path, up).findings == []


# --------------------------------------------------------------------------- CLI, JSON, exit codes

def _mixed_dir(tmp_path: Path) -> Path:
    root = tmp_path / "migrations"
    write(root, "2024-01-01-000000_warn", "CREATE INDEX users_email_idx ON users (email);\n")
    write(root, "2024-01-02-000000_drop", "ALTER TABLE users DROP COLUMN legacy;\n")
    write(root, "2024-01-03-000000_clean", "ALTER TABLE users ADD COLUMN nickname text;\n")
    return root


def test_exit_codes_with_and_without_strict(tmp_path):
    root = _mixed_dir(tmp_path)
    d = ["--migration-dir", str(root)]
    assert main(d + ["20240103000000"]) == 0
    assert main(d + ["20240103000000", "--strict"]) == 0
    assert main(d + ["20240101000000"]) == 0  # warnings only
    assert main(d + ["20240101000000", "--strict"]) == 1
    assert main(d + ["2024-01-02-000000_drop"]) == 2  # version given as directory name
    assert main(d + ["2024-01-02-000000_drop", "--strict"]) == 2
    assert main(d) == 2
    assert main(d + ["--all"]) == 2


def test_lint_report_api(tmp_path):
    report = lint_migrations(discover(_mixed_dir(tmp_path)))
    assert report.has_destructive and report.has_warnings and not report.has_errors
    assert report.exit_code() == 2 and report.exit_code(strict=True) == 2
    assert [m[0] for m in report.migrations] == ["20240101000000", "20240102000000",
                                                 "20240103000000"]
    data = json.loads(report.to_json())
    assert data["summary"]["destructive"] == 1 and data["summary"]["warning"] == 1


def test_json_shape(tmp_path, capsys):
    root = _mixed_dir(tmp_path)
    assert main(["--migration-dir", str(root), "--json", "--strict"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"format", "findings", "summary"}
    assert doc["format"] == 1
    assert doc["summary"] == {
        "migrations": 3, "findings": 2, "error": 0, "destructive": 1, "warning": 1,
        "strict": True, "exit_code": 2, "squawk_version": doc["summary"]["squawk_version"],
    }
    assert doc["summary"]["squawk_version"]
    first, second = doc["findings"]
    assert set(first) == {"version", "migration", "file", "line", "column", "rule", "severity",
                          "message", "hint", "source", "statement", "docs"}
    assert (first["version"], first["rule"], first["severity"], first["line"], first["column"]) \
        == ("20240101000000", "require-concurrent-index-creation", "warning", 1, 1)
    assert first["migration"] == "2024-01-01-000000_warn"
    assert first["file"] == str(root / "2024-01-01-000000_warn" / "up.sql")
    assert first["source"] == "squawk"
    assert first["docs"] == "https://squawkhq.com/docs/require-concurrent-index-creation"
    assert (second["rule"], second["severity"], second["column"]) == \
        ("ban-drop-column", "destructive", 19)


def test_text_output_one_line_per_finding_plus_hint(tmp_path, capsys, monkeypatch):
    root = _mixed_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["--migration-dir", "migrations"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("migrations/2024-01-01-000000_warn/up.sql:1:1: warning "
                               "[require-concurrent-index-creation] ")
    assert lines[1].startswith("    hint: ")
    assert lines[2].startswith("migrations/2024-01-02-000000_drop/up.sql:1:19: destructive "
                               "[ban-drop-column] ")
    assert lines[-1].startswith("lint: 2 findings in 3 migrations (1 destructive, 1 warning)")
    assert root.is_dir()


def test_default_directory_is_project_migrations(tmp_path, capsys):
    write(tmp_path / "migrations", "2024-01-01-000000_a", "TRUNCATE users;\n")
    assert main(["-C", str(tmp_path), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["findings"][0]["rule"] == "truncate"


def test_unknown_version_and_bad_arguments_exit_3(tmp_path, capsys):
    root = _mixed_dir(tmp_path)
    assert main(["--migration-dir", str(root), "19990101000000"]) == 3
    assert main(["--migration-dir", str(root), "--all", "20240101000000"]) == 3
    assert main(["--migration-dir", str(root), "--no-such-flag"]) == 3
    assert main(["--migration-dir", str(tmp_path / "missing")]) == 3
    err = capsys.readouterr().err
    assert "19990101000000" in err and "does not exist" in err


def test_missing_squawk_is_a_clear_error(tmp_path, monkeypatch, capsys):
    write(tmp_path / "migrations", "2024-01-01-000000_a", "SELECT 1;\n")
    monkeypatch.setenv("CONVEYOR_SQUAWK", str(tmp_path / "no-squawk"))
    with pytest.raises(LintError, match="squawk was not found"):
        lint_migrations(discover(tmp_path / "migrations"))
    assert main(["--migration-dir", str(tmp_path / "migrations"), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"] == "LintError" and doc["exit_code"] == 3


def test_squawk_is_found_beside_the_interpreter():
    path = lint.find_squawk()
    assert path.name == "squawk" and path.is_file()


def test_odd_directory_names_and_migrations_not_on_disk(tmp_path):
    """squawk takes paths as glob patterns: such files go through stdin instead; so does SQL
    that is not (or no longer) what the file on disk holds, e.g. from a library caller."""
    from dataclasses import dataclass

    root = tmp_path / "mig [rations] *"
    write(root, "2024-01-01-000000_add index {x}", "CREATE INDEX users_idx ON users (id);\n")
    report = lint_migrations(discover(root))
    assert rules(report) == {"require-concurrent-index-creation": "warning"}
    assert report.findings[0].file == str(root / "2024-01-01-000000_add index {x}" / "up.sql")

    @dataclass
    class FakeMigration:
        version: str
        name: str
        up_sql: str
        run_in_transaction: bool
        up_path: Path

    fake = FakeMigration("1", "1_gone", "TRUNCATE users;", True, tmp_path / "nowhere" / "up.sql")
    report = lint_migrations([fake])
    assert [(f.rule, f.file) for f in report.findings] == [("truncate", str(fake.up_path))]


def test_many_migrations_are_linted_in_batches(tmp_path):
    root = tmp_path / "migrations"
    for i in range(1, 41):
        write(root, f"2024-01-01-{i:06d}_m{i}", f"CREATE TABLE t{i} (id bigint);\n"
              f"CREATE INDEX t{i}_idx ON t{i} (id);\nCREATE INDEX u{i}_idx ON users (id);\n")
    report = lint_migrations(discover(root))
    assert len(report.findings) == 40
    assert {(f.rule, f.line) for f in report.findings} == {
        ("require-concurrent-index-creation", 3)}
