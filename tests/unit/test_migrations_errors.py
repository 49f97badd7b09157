"""Error messages: one paragraph saying what, where and how to fix; secrets masked."""

from __future__ import annotations

from conveyor.migrations.errors import (
    DiscoveryError,
    DriftError,
    LockTimeout,
    MigrationFailed,
    UsageError,
    mask_secrets,
)


def test_mask_secrets_in_urls_and_conninfo():
    assert mask_secrets("postgresql://app:s3cr3t@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert mask_secrets("postgres://u:p%40ss@h/d?sslmode=require") == "postgres://u:***@h/d?sslmode=require"
    assert "hunter2" not in mask_secrets("host=db user=app password=hunter2 dbname=app")
    assert "q x" not in mask_secrets("password='q x' host=db")
    assert mask_secrets("postgresql://app@db/app") == "postgresql://app@db/app"


def test_migration_failed_names_migration_file_line_column_message_and_hint():
    e = MigrationFailed("20240101000000", "2024-01-01-000000_add_email",
                        "migrations/2024-01-01-000000_add_email/up.sql", 3, 14,
                        'syntax error at or near "TABEL"', "Did you mean TABLE?",
                        "CREATE TABEL x (id int);", sqlstate="42601")
    text = str(e)
    assert "2024-01-01-000000_add_email" in text
    assert "migrations/2024-01-01-000000_add_email/up.sql:3:14" in text
    assert 'syntax error at or near "TABEL"' in text and "42601" in text
    assert "Hint: Did you mean TABLE?" in text
    assert "Failing statement: CREATE TABEL x (id int);" in text
    assert "rolled back" in text and "\n" not in text
    d = e.to_dict()
    assert (d["line"], d["column"], d["version"]) == (3, 14, "20240101000000")
    assert e.exit_code == 1


def test_non_transactional_failure_says_changes_may_remain():
    e = MigrationFailed("1", "1_x", "up.sql", 1, 1, "boom", rolled_back=False)
    assert "run_in_transaction = false" in str(e)


def test_lock_timeout_names_lock_and_holder():
    e = LockTimeout(7165066986957401970, 2.5, [{"pid": 4242, "usename": "deploy",
                                                "application_name": "conveyor migrate",
                                                "client_addr": "10.0.0.5", "state": "active",
                                                "backend_start": "2026-11-26T10:00:00Z"}])
    text = str(e)
    assert "2.5 s" in text and "pg_advisory_lock(7165066986957401970)" in text
    assert "pid 4242" in text and "deploy@10.0.0.5" in text and "conveyor migrate" in text
    assert "pg_terminate_backend" in text and e.exit_code == 1


def test_exit_codes_and_masking_in_every_error():
    assert DiscoveryError("x").exit_code == 2 and UsageError("x").exit_code == 2
    assert DriftError(["a was edited"]).exit_code == 1
    assert "***" in str(UsageError("cannot reach postgresql://u:pw@h/d"))
    assert "pw@" not in str(UsageError("cannot reach postgresql://u:pw@h/d"))


def test_library_exports_resolve_lazily():
    import subprocess
    import sys

    code = ("import sys, conveyor.migrations as m\n"
            "assert 'psycopg' not in sys.modules and 'conveyor.migrations.engine' not in sys.modules\n"
            "missing = [n for n in m.__all__ if getattr(m, n, None) is None]\n"
            "assert not missing, missing\n"
            "assert 'psycopg' in sys.modules  # the engine runs on psycopg 3\n"
            "bad = [n for n in sys.modules if n.startswith('conveyor.')"
            " and n.split('.')[1] not in ('migrations', 'masking')]\n"
            "assert not bad, bad  # the engine imports nothing else of conveyor\n"
            "for banned in ('typer', 'rich', 'pydantic', 'conveyor.config'):\n"
            "    assert banned not in sys.modules, banned\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
