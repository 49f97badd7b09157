"""`conveyor migrate run/revert/redo/status/plan/generate` on a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.migrations import Migrator
from conveyor.migrations.engine import LOCK_KEY
from tests.integration.test_migrations_common import (
    cli,
    dump_schema,
    rows,
    run_cli,
    write_migration,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def mdir(tmp_path) -> Path:
    d = tmp_path / "migrations"
    write_migration(d, "2024-01-01-000000_create_users",
                    "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);\n",
                    "DROP TABLE users;\n")
    write_migration(d, "2024-01-02-000000_create_posts",
                    "CREATE TABLE posts (id serial PRIMARY KEY,\n"
                    "  user_id int NOT NULL REFERENCES users (id), title text);\n"
                    "INSERT INTO users (name) VALUES ('alice');\n",
                    "DROP TABLE posts;\nDELETE FROM users WHERE name = 'alice';\n")
    write_migration(d, "20240103000000_add_email",
                    "ALTER TABLE users ADD COLUMN email text;\n",
                    "ALTER TABLE users DROP COLUMN email;\n")
    return d


def diesel_rows(url):
    return [r[0] for r in rows(url, "SELECT version FROM __diesel_schema_migrations ORDER BY 1")]


def test_mig_run_applies_all_in_order_and_records_both_tables(pg_url, mdir, capsys):
    code, out, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 0, err
    assert "Applied 2024-01-01-000000_create_users" in out
    assert "3 migrations applied" in out
    assert diesel_rows(pg_url) == ["20240101000000", "20240102000000", "20240103000000"]
    conv = rows(pg_url, "SELECT version, name, checksum, duration_ms IS NOT NULL, source,"
                        " applied_by FROM __conveyor_migrations ORDER BY 1")
    m = Migrator(pg_url, mdir).discover()
    assert [(c[0], c[1], c[2]) for c in conv] == [(x.version, x.name, x.checksum) for x in m]
    assert all(c[3] and c[4] == "conveyor" and "@" in c[5] for c in conv)
    # run_on is Diesel's default (CURRENT_TIMESTAMP) in UTC, like Diesel's session
    (delta,) = rows(pg_url, "SELECT max(abs(extract(epoch FROM run_on - (now() AT TIME ZONE"
                            " 'UTC')))) FROM __diesel_schema_migrations")[0]
    assert delta < 60
    # no-op
    code, out, _ = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 0 and "Nothing to do" in out


def test_mig_revert_one_n_and_all(pg_url, mdir, capsys):
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    assert cli(capsys, "run", *args)[0] == 0
    code, out, _ = cli(capsys, "revert", *args)
    assert code == 0 and "Reverted 20240103000000_add_email" in out
    assert diesel_rows(pg_url) == ["20240101000000", "20240102000000"]
    assert rows(pg_url, "SELECT count(*) FROM __conveyor_migrations")[0][0] == 2
    code, out, _ = cli(capsys, "revert", "-n", "5", *args)  # more than applied: stops quietly
    assert code == 0 and "2 migrations reverted" in out
    assert diesel_rows(pg_url) == []
    assert rows(pg_url, "SELECT to_regclass('users') IS NULL")[0][0] is True
    code, out, _ = cli(capsys, "revert", *args)
    assert code == 0 and "Nothing to revert" in out
    assert cli(capsys, "run", *args)[0] == 0
    code, out, _ = cli(capsys, "revert", "--all", "--json", *args)
    data = json.loads(out)
    assert [s["version"] for s in data["reverted"]] == ["20240103000000", "20240102000000",
                                                        "20240101000000"]
    assert diesel_rows(pg_url) == []


def test_mig_redo_reapplies_and_is_one_transaction(pg_url, mdir, capsys):
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    assert cli(capsys, "run", *args)[0] == 0
    code, out, _ = cli(capsys, "redo", "-n", "2", *args)
    assert code == 0, out
    assert out.index("Reverted 20240103000000") < out.index("Reverted 2024-01-02") \
        < out.index("Applied 2024-01-02") < out.index("Applied 20240103000000")
    assert diesel_rows(pg_url) == ["20240101000000", "20240102000000", "20240103000000"]
    # Edit the last migration so that re-applying fails: the whole redo rolls back (Diesel
    # runs redo in one transaction when every migration involved is transactional).
    before = dump_schema(pg_url)
    (mdir / "20240103000000_add_email" / "up.sql").write_text(
        "ALTER TABLE users ADD COLUMN email text;\nALTER TABLE nope ADD COLUMN x int;\n")
    code, out, err = cli(capsys, "redo", *args)
    assert code == 1
    assert "20240103000000_add_email" in err and "up.sql:2:1:" in err
    assert 'relation "nope" does not exist' in err
    assert dump_schema(pg_url) == before
    assert diesel_rows(pg_url) == ["20240101000000", "20240102000000", "20240103000000"]


def test_mig_status_and_plan(pg_url, mdir, capsys):
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    code, out, _ = cli(capsys, "status", "--json", *args)
    data = json.loads(out)
    assert code == 0 and data["applied"] == [] and len(data["pending"]) == 3
    assert rows(pg_url, "SELECT to_regclass('__diesel_schema_migrations')")[0][0] is None, \
        "status must not create tables"
    code, out, _ = cli(capsys, "plan", *args)
    assert code == 0
    assert out.index("2024-01-01-000000_create_users") < out.index("20240103000000_add_email")
    assert "CREATE TABLE posts" in out
    assert rows(pg_url, "SELECT to_regclass('users')")[0][0] is None, "plan must not run"
    m = Migrator(pg_url, mdir)
    m.run()
    write_migration(mdir, "20240104000000_more", "SELECT 1;\n")
    code, out, _ = cli(capsys, "plan", "--json", *args)
    data = json.loads(out)
    assert [p["name"] for p in data["pending"]] == ["20240104000000_more"]
    assert data["pending"][0]["up_sql"] == "SELECT 1;\n" and data["run_would_refuse"] is False
    code, out, _ = cli(capsys, "status", *args)
    assert code == 0
    assert "[X] 2024-01-01-000000_create_users" in out and "[ ] 20240104000000_more" in out
    assert "3 applied, 1 pending" in out and "***" in out


def test_mig_generate_then_run(pg_url, tmp_path, capsys):
    mdir = tmp_path / "m"
    code, out, _ = cli(capsys, "generate", "create_widgets", "--migration-dir", str(mdir))
    assert code == 0
    (d,) = list(mdir.iterdir())
    (d / "up.sql").write_text("CREATE TABLE widgets (id int);\n")
    (d / "down.sql").write_text("DROP TABLE widgets;\n")
    code, out, _ = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 0 and d.name in out
    assert diesel_rows(pg_url) == [d.name.split("_")[0].replace("-", "")]


def test_mig_failing_migration_leaves_schema_and_data_unchanged(pg_url, mdir, capsys):
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    assert cli(capsys, "run", *args)[0] == 0
    write_migration(mdir, "20240201000000_good", "CREATE TABLE good (id int);\n")
    # a syntax error in the middle of a multi-statement file
    write_migration(mdir, "20240202000000_broken",
                    "-- step 1\nCREATE TABLE t1 (id int);\nINSERT INTO users (name) VALUES ('bob');\n"
                    "UPDATE users SET name = upper(name);\n"
                    "CREATE TABEL t2 (id int);\nCREATE TABLE t3 (id int);\n")
    write_migration(mdir, "20240203000000_after", "CREATE TABLE after_broken (id int);\n")
    data_before = rows(pg_url, "SELECT id, name FROM users ORDER BY id")
    code, out, err = cli(capsys, "run", *args)
    assert code == 1
    # the migration before the broken one is applied, as Diesel would have done
    assert "Applied 20240201000000_good" in out
    assert diesel_rows(pg_url)[-1] == "20240201000000"
    schema_after_good = dump_schema(pg_url)
    assert "20240202000000_broken" in err and "version 20240202000000" in err
    assert "20240202000000_broken/up.sql:5:8" in err
    assert 'syntax error at or near "TABEL"' in err and "CREATE TABEL t2" in err
    assert "Traceback" not in err
    assert rows(pg_url, "SELECT id, name FROM users ORDER BY id") == data_before
    assert rows(pg_url, "SELECT to_regclass('t1'), to_regclass('after_broken')")[0] == (None, None)
    # same again as JSON, and nothing changed
    code, out, _ = cli(capsys, "run", "--json", *args)
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    err_ = data["error"]
    assert (err_["name"], err_["line"], err_["column"]) == ("20240202000000_broken", 5, 8)
    assert err_["sqlstate"] == "42601" and err_["rolled_back"] is True
    assert dump_schema(pg_url) == schema_after_good


def test_mig_runtime_error_without_position_names_the_statement(pg_url, tmp_path, capsys):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_t", "CREATE TABLE t (id int PRIMARY KEY, n int CHECK (n > 0));\n")
    write_migration(mdir, "2_data",
                    "INSERT INTO t VALUES (1, 1);\n\n-- the next one violates the check\n"
                    "INSERT INTO t VALUES (2, 5);\n  INSERT INTO t VALUES (3, -1);\n"
                    "INSERT INTO t VALUES (4, 4);\n")
    code, _, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 1
    assert "2_data/up.sql:5:3" in err and "violates check constraint" in err
    assert "INSERT INTO t VALUES (3, -1);" in err
    assert rows(pg_url, "SELECT count(*) FROM t")[0][0] == 0
    # a position-less error inside a DO block / function: the statement and the context
    write_migration(mdir, "2_data", "DO $$ BEGIN\n  RAISE EXCEPTION 'nope' USING HINT = 'fix it';\nEND $$;\n")
    code, _out, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 1 and "2_data/up.sql:1:1" in err and "Hint: fix it" in err
    assert "PL/pgSQL" in err


def test_mig_incomplete_last_statement_points_at_end_of_file(pg_url, tmp_path, capsys):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_cut", "CREATE TABLE a (id int);\nCREATE TABLE b (id int")
    code, _out, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 1 and "1_cut/up.sql:2:23" in err and "end of the file" in err
    assert rows(pg_url, "SELECT to_regclass('a')")[0][0] is None


def test_mig_non_transactional_create_index_concurrently(pg_url, mdir, capsys):
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    write_migration(mdir, "20240301000000_index_posts",
                    "CREATE INDEX CONCURRENTLY posts_title_idx ON posts (title);\n",
                    "DROP INDEX CONCURRENTLY posts_title_idx;\n",
                    "run_in_transaction = false\n")
    write_migration(mdir, "20240302000000_after_index", "SELECT 1;\n", "SELECT 1;\n")
    code, _out, err = cli(capsys, "run", *args)
    assert code == 0, err
    assert rows(pg_url, "SELECT indisvalid FROM pg_index WHERE indexrelid ="
                        " 'posts_title_idx'::regclass")[0][0] is True
    assert diesel_rows(pg_url)[-2:] == ["20240301000000", "20240302000000"]
    assert cli(capsys, "revert", "-n", "2", *args)[0] == 0
    assert rows(pg_url, "SELECT to_regclass('posts_title_idx')")[0][0] is None


def test_mig_concurrently_in_a_transaction_fails_with_a_hint(pg_url, mdir, capsys):
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    write_migration(mdir, "20240301000000_index_posts",
                    "CREATE INDEX CONCURRENTLY posts_title_idx ON posts (title);\n")
    code, _out, err = cli(capsys, "run", *args)
    assert code == 1
    assert "cannot run inside a transaction block" in err
    assert "run_in_transaction = false" in err
    assert diesel_rows(pg_url) == ["20240101000000", "20240102000000", "20240103000000"]


def test_mig_edited_and_missing_migrations_are_drift(pg_url, mdir, capsys):
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    assert cli(capsys, "run", *args)[0] == 0
    (mdir / "2024-01-02-000000_create_posts" / "up.sql").write_text("-- edited\nSELECT 1;\n")
    import shutil

    shutil.rmtree(mdir / "20240103000000_add_email")
    write_migration(mdir, "20240104000000_new", "CREATE TABLE newer (id int);\n",
                    "DROP TABLE newer;\n")
    code, out, _ = cli(capsys, "status", "--json", *args)
    data = json.loads(out)
    states = {a["version"]: a["state"] for a in data["applied"]}
    assert states == {"20240101000000": "applied", "20240102000000": "edited",
                      "20240103000000": "missing"}
    kinds = sorted(p["kind"] for p in data["problems"])
    assert kinds == ["edited", "missing"] and data["run_would_refuse"] is True
    code, out, err = cli(capsys, "run", *args)
    assert code == 1
    assert "2024-01-02-000000_create_posts/up.sql was edited after it was applied" in err
    assert "20240103000000" in err and "no migration directory gives it" in err
    assert "--allow-drift" in err
    assert rows(pg_url, "SELECT to_regclass('newer')")[0][0] is None
    code, out, err = cli(capsys, "run", "--allow-drift", *args)
    assert code == 0 and "Applied 20240104000000_new" in out and "--allow-drift" in err
    # a missing migration cannot be reverted
    code, out, err = cli(capsys, "revert", *args)
    assert code == 0  # the newest applied one (20240104000000) is on disk
    code, out, err = cli(capsys, "revert", *args)
    assert code == 1 and "Cannot revert version 20240103000000" in err


def test_mig_lock_timeout_names_the_lock_and_holder(pg_url, mdir, capsys):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True, application_name="someone-else") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        pid = holder.info.backend_pid
        r = run_cli("run", "--database-url", pg_url, "--migration-dir", str(mdir),
                    "--lock-timeout", "0.5")
    assert r.returncode == 1, r.stderr
    assert f"pg_advisory_lock({LOCK_KEY})" in r.stderr and "0.5 s" in r.stderr
    assert f"pid {pid}" in r.stderr and "someone-else" in r.stderr
    assert rows(pg_url, "SELECT to_regclass('__diesel_schema_migrations')")[0][0] is None


def test_mig_migrations_applied_by_diesel_are_adopted_not_drift(pg_url, mdir, capsys):
    from tests.integration.test_migrations_common import DIESEL_SETUP_SQL, psql

    psql(pg_url, DIESEL_SETUP_SQL)
    psql(pg_url, file=mdir / "2024-01-01-000000_create_users" / "up.sql", single_transaction=True)
    psql(pg_url, "INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000')")
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    code, out, _ = cli(capsys, "status", "--json", *args)
    data = json.loads(out)
    assert data["applied"][0]["state"] == "unrecorded" and data["run_would_refuse"] is False
    code, out, _err = cli(capsys, "run", *args)
    assert code == 0 and "Applied 2024-01-01" not in out and "2 migrations applied" in out
    assert rows(pg_url, "SELECT source FROM __conveyor_migrations WHERE version ="
                        " '20240101000000'")[0][0] == "adopted"
    code, out, _ = cli(capsys, "status", "--json", *args)
    assert {a["state"] for a in json.loads(out)["applied"]} == {"applied"}


def test_mig_search_path_is_restored_after_a_migration(pg_url, tmp_path, capsys):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_schema", "CREATE SCHEMA app;\nSET search_path TO app;\n"
                                      "CREATE TABLE inside (id int);\n")
    write_migration(mdir, "2_after", "CREATE TABLE outside (id int);\n")
    code, _out, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 0, err
    assert rows(pg_url, "SELECT to_regclass('app.inside') IS NOT NULL,"
                        " to_regclass('public.outside') IS NOT NULL")[0] == (True, True)
    assert rows(pg_url, "SELECT count(*) FROM public.__diesel_schema_migrations")[0][0] == 2


def test_mig_python_dash_m_applies_reports_and_reverts(pg_url, mdir):
    """`python -m conveyor.migrations` as a process (how the engine runs in a container)."""
    write_migration(mdir, "20240202000000_broken", "SELECT 1;\nSELECT 1/0;\n")
    env: dict[str, str] = {}
    r = run_cli("run", "--database-url", pg_url, "--migration-dir", str(mdir), env=env)
    assert r.returncode == 1
    assert "Applied 20240103000000_add_email" in r.stdout
    assert "20240202000000_broken/up.sql:2:1" in r.stderr and "division by zero" in r.stderr
    r = run_cli("revert", "--all", "--database-url", pg_url, "--migration-dir", str(mdir),
                env=env)
    assert r.returncode == 0, r.stderr
    assert rows(pg_url, "SELECT count(*) FROM __diesel_schema_migrations")[0][0] == 0


def test_mig_library_api_results(pg_url, mdir):
    events = []
    m = Migrator(pg_url, mdir, on_event=lambda e, **k: events.append(e))
    res = m.run()
    assert [s.version for s in res.applied] == ["20240101000000", "20240102000000",
                                                 "20240103000000"]
    assert all(s.duration_ms is not None and s.duration_ms >= 0 for s in res.applied)
    assert events.count("done") == 3
    st = m.status()
    assert [a.state for a in st.applied] == ["applied"] * 3 and st.pending == []
    res = m.redo(1)
    assert [(s.version, s.direction) for s in res.steps] == [("20240103000000", "down"),
                                                             ("20240103000000", "up")]
    res = m.revert(all=True)
    assert len(res.reverted) == 3


def test_mig_database_and_directory_from_the_project_config(pg_url, tmp_path, monkeypatch,
                                                           capsys):
    project = tmp_path / "proj"
    write_migration(project / "db" / "migrations", "1_t", "CREATE TABLE from_config (id int);\n")
    (project / "conveyor.toml").write_text(
        '[app]\nname = "demo"\nimage = "demo"\nport = 8000\n\n'
        '[migrations]\ndir = "db/migrations"\n\n'
        '[environments.local.database]\nkind = "url"\nurl = { env = "DEMO_DB_URL" }\n')
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("MIGRATION_DIRECTORY", raising=False)
    monkeypatch.setenv("DEMO_DB_URL", pg_url)
    code, _, err = cli(capsys, "-C", str(project), "run")
    assert code == 0, err
    assert rows(pg_url, "SELECT to_regclass('from_config') IS NOT NULL")[0][0] is True
    code, _, err = cli(capsys, "status", "-C", str(project), "--env", "nope")
    assert code == 2 and "unknown environment 'nope'" in err and "Traceback" not in err
    # DATABASE_URL wins over the config's environment
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@127.0.0.1:1/x")
    code, _out, err = cli(capsys, "status", "-C", str(project))
    assert code == 1 and "Cannot connect" in err and "secret" not in err


def test_mig_verbose_shows_server_notices(pg_url, tmp_path, capsys):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_note", "DO $$ BEGIN RAISE NOTICE 'hello from a migration'; END $$;\n")
    code, _out, err = cli(capsys, "run", "-v", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 0 and "hello from a migration" in err and "skipping" not in err


def test_mig_run_imports_only_the_stdlib_and_psycopg(pg_url, mdir):
    """`conveyor migrate run`: the engine, conveyor.masking, psycopg and the standard library;
    no Typer, rich, pydantic, conveyor's config or the rest of conveyor."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from conveyor.main import main\n"
            "try:\n"
            "    main(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'pydantic')"
            " or (m.startswith('conveyor.') and m.split('.')[1] not in"
            " ('main', 'migrations', 'masking'))]\n"
            "assert 'psycopg' in sys.modules\n"
            "assert not bad, bad\n")
    args = ["migrate", "run", "--database-url", pg_url, "--migration-dir", str(mdir)]
    for _ in range(2):  # applying, then the no-op
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr


def test_mig_bookkeeping_survives_a_migration_that_drops_prepared_statements(pg_url, tmp_path):
    """Batched bookkeeping runs as prepared statements; a file that may drop them
    (DEALLOCATE ALL, DISCARD) gets plain bookkeeping and the next batch prepares again."""
    mdir = tmp_path / "m"
    write_migration(mdir, "1_a", "CREATE TABLE a (id int);\n")
    write_migration(mdir, "2_dealloc", "DEALLOCATE ALL;\nCREATE TABLE b (id int);\n")
    write_migration(mdir, "3_c", "CREATE TABLE c (id int);\n")
    write_migration(mdir, "4_discard", "DISCARD PLANS;\n")
    write_migration(mdir, "5_d", "CREATE TABLE d (id int);\n")
    res = Migrator(pg_url, mdir).run()
    assert [s.version for s in res.applied] == ["1", "2", "3", "4", "5"]
    assert all(s.duration_ms is not None and s.duration_ms >= 0 for s in res.applied)
    assert diesel_rows(pg_url) == ["1", "2", "3", "4", "5"]
    conv = rows(pg_url, "SELECT version, duration_ms FROM __conveyor_migrations ORDER BY 1")
    assert [c[0] for c in conv] == ["1", "2", "3", "4", "5"]
    # each migration's duration is stored with its row, equal to what run() reported
    assert [c[1] for c in conv] == [s.duration_ms for s in res.applied]
    assert Migrator(pg_url, mdir).status().problems == []


def test_mig_failure_after_earlier_batches_reports_and_keeps_the_earlier_ones(pg_url, tmp_path,
                                                                             capsys):
    """A syntax error in a later file of a batch: the whole query is rejected before anything
    runs (the PREPARE of the bookkeeping too); the earlier files are then applied and the
    failure reported, and a later run applies the rest once the file is fixed."""
    mdir = tmp_path / "m"
    for i in range(1, 6):
        write_migration(mdir, f"{i}_ok", f"SELECT {i};\n")
    write_migration(mdir, "6_broken", "SELECT 1;\nSELEC 2;\n")
    write_migration(mdir, "7_after", "SELECT 7;\n")
    code, _, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 1 and "6_broken/up.sql:2:1" in err
    assert diesel_rows(pg_url) == ["1", "2", "3", "4", "5"]
    assert rows(pg_url, "SELECT count(*), count(duration_ms) FROM __conveyor_migrations"
                        " WHERE source = 'conveyor'")[0] == (5, 5)
    write_migration(mdir, "6_broken", "SELECT 1;\nSELECT 2;\n")
    code, _out, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 0, err
    assert diesel_rows(pg_url) == ["1", "2", "3", "4", "5", "6", "7"]
