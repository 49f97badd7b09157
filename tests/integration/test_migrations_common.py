"""Helpers shared by the migration integration tests (no tests here).

Everything is real: the session's PostgreSQL server (tests/support/pgserver.py), psql and
pg_dump from the same installation, and conveyor's CLI run in-process or as a process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.pgserver import pg_bin

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "migrations_corpus"

#: diesel/src/migration/setup_migration_table.sql, verbatim (the cited Diesel source)
DIESEL_SETUP_SQL = (
    "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n"
    "       version VARCHAR(50) PRIMARY KEY NOT NULL,\n"
    "       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
    ");\n"
)


def diesel_version(dir_name: str) -> str:
    """migrations_internals::version_from_string, transcribed from Diesel's source."""
    return dir_name.split("_")[0].replace("-", "")


def write_migration(root: Path, name: str, up: str, down: str | None = None,
                    meta: str | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "up.sql").write_text(up)
    if down is not None:
        (d / "down.sql").write_text(down)
    if meta is not None:
        (d / "metadata.toml").write_text(meta)
    return d


def psql(url: str, sql: str | None = None, *, file: Path | None = None,
         single_transaction: bool = False, check: bool = True) -> str:
    argv = [str(pg_bin() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url]
    if single_transaction:
        argv.append("-1")
    argv += ["-f", str(file)] if file is not None else ["-c", sql or ""]
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"psql failed ({r.returncode}): {r.stderr}")
    return r.stdout.strip()


def rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def dump_schema(url: str, exclude: tuple[str, ...] = ("__conveyor_migrations",)) -> str:
    argv = [str(pg_bin() / "pg_dump"), "--schema-only", "--no-owner", "-d", url]
    for table in exclude:
        argv += ["--exclude-table", table]
    r = subprocess.run(argv, capture_output=True, text=True, check=True)
    # drop comment lines (they carry nothing but versions) and blank runs
    # (pg_dump >= 15.14 also brackets its output with \restrict / \unrestrict and a random key)
    lines = [ln for ln in r.stdout.splitlines()
             if not ln.startswith(("--", "\\restrict ", "\\unrestrict "))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m conveyor.migrations ARGS` as a real process."""
    full_env = dict(os.environ)
    full_env.pop("DATABASE_URL", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "conveyor.migrations", *args],
                          capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout, check=False)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """conveyor.migrations.cli.main in-process; (exit code, stdout, stderr)."""
    from conveyor.migrations.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
