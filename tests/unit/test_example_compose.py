"""Static checks of the example app in examples/notes: its compose file, migrations, Dockerfile.

The compose file is validated against the Compose specification with check-jsonschema (from
this venv, whose vendored schema needs no network) and parsed by the installed Compose
itself. The example's own HTTP tests (examples/notes/tests) need a running app and are not
part of this suite.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "notes"
COMPOSE_FILE = EXAMPLE / "docker-compose.yml"
MIGRATIONS = EXAMPLE / "migrations"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

DIESEL_DIR = re.compile(r"^(\d{4}-\d{2}-\d{2}-\d{6})_[a-z0-9_]+$")


def run_check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    assert CHECK_JSONSCHEMA.exists(), f"check-jsonschema not installed in this venv: {CHECK_JSONSCHEMA}"
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- docker-compose.yml --------------------------------------------------------------------


def test_compose_file_validates_against_compose_spec() -> None:
    result = run_check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("needle", "replacement"),
    [
        # an unknown key in a service
        ("    image: notes:local\n", "    image: notes:local\n    not_a_compose_key: true\n"),
        # a wrong type: ports must be a list
        ('    ports:\n      - "127.0.0.1:${NOTES_APP_PORT:-8000}:8000"\n', "    ports: 8000\n"),
    ],
    ids=["unknown-key", "ports-not-a-list"],
)
def test_compose_validator_rejects_invalid_file(tmp_path: Path, needle: str, replacement: str) -> None:
    """The validator really checks: a broken copy of the file fails."""
    text = COMPOSE_FILE.read_text()
    assert needle in text, "the compose file changed; update this test's needle"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(needle, replacement, 1))
    result = run_check_jsonschema(broken)
    assert result.returncode != 0, result.stdout + result.stderr


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60,
                               check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.fail("neither docker-compose (v1) nor `docker compose` (v2) is installed (scripts/setup)")


def test_compose_file_is_accepted_by_installed_compose(tmp_path: Path) -> None:
    """`config` parses and interpolates without a Docker engine; v1.29.2 is the strict one."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "BASE_PYTHON_IMAGE": "example/python:test",
        "NOTES_APP_PORT": "18123",
        "NOTES_DB_PORT": "15123",
    }
    cmd = _compose_command() + ["-f", str(COMPOSE_FILE), "-p", "notesconfigcheck", "config"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "127.0.0.1:18123:8000" in out
    assert "127.0.0.1:15123:5432" in out
    assert "example/python:test" in out
    assert "postgres:15" in out  # the BASE_POSTGRES_IMAGE default


def test_compose_publishes_ports_on_loopback_only() -> None:
    ports = re.findall(r'^\s*- "([^"]+)"\s*$', COMPOSE_FILE.read_text(), flags=re.MULTILINE)
    published = [p for p in ports if p.count(":") >= 2]
    assert len(published) == 2, ports
    assert all(p.startswith("127.0.0.1:") for p in published), published


# -- migrations -----------------------------------------------------------------------------


def migration_dirs() -> list[Path]:
    return sorted(p for p in MIGRATIONS.iterdir() if p.is_dir())


def test_migrations_have_diesel_layout() -> None:
    dirs = migration_dirs()
    assert len(dirs) >= 3
    versions = []
    for d in dirs:
        m = DIESEL_DIR.match(d.name)
        assert m, f"{d.name}: not <YYYY-MM-DD-HHMMSS>_<name>"
        versions.append(m.group(1))
        for name in ("up.sql", "down.sql"):
            f = d / name
            assert f.is_file(), f"{d.name}/{name} missing"
            assert f.read_text().strip(), f"{d.name}/{name} is empty"
    assert len(set(versions)) == len(versions), "duplicate migration versions"


def _sql_statements(sql: str) -> list[str]:
    no_comments = re.sub(r"--[^\n]*", "", sql)
    return [s for s in (part.strip() for part in no_comments.split(";")) if s]


def test_concurrent_index_migration_runs_outside_transaction() -> None:
    d = MIGRATIONS / "2026-11-03-000001_index_notes_created_at"
    meta = tomllib.loads((d / "metadata.toml").read_text())
    assert meta["run_in_transaction"] is False
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS" in (d / "up.sql").read_text()
    assert "DROP INDEX CONCURRENTLY IF EXISTS" in (d / "down.sql").read_text()


def test_every_concurrently_statement_is_alone_and_outside_transaction() -> None:
    """CONCURRENTLY needs run_in_transaction = false, and one statement per file: several
    statements sent as one query string run in an implicit transaction."""
    for d in migration_dirs():
        meta_file = d / "metadata.toml"
        meta = tomllib.loads(meta_file.read_text()) if meta_file.exists() else {}
        for name in ("up.sql", "down.sql"):
            sql = (d / name).read_text()
            if "CONCURRENTLY" not in sql.upper():
                continue
            assert meta.get("run_in_transaction") is False, f"{d.name}/{name}"
            assert len(_sql_statements(sql)) == 1, f"{d.name}/{name}: more than one statement"


def test_schema_provides_what_the_app_queries() -> None:
    up = "\n".join((d / "up.sql").read_text() for d in migration_dirs())
    for column in ("id", "title", "body", "created_at", "pinned"):
        assert re.search(rf"\b{column}\b", up), column
    db_py = (EXAMPLE / "app" / "notes" / "db.py").read_text()
    assert 'NOTE_COLUMNS = "id, title, body, pinned, created_at"' in db_py


# -- Dockerfile, requirements, app sources ---------------------------------------------------


def test_dockerfile_essentials() -> None:
    text = (EXAMPLE / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.12-slim"
    assert lines[1] == "FROM ${BASE_IMAGE}"
    assert "python3 -m venv /opt/venv" in text
    assert re.search(r"^ENV .*PATH=/opt/venv/bin:", text, flags=re.MULTILINE | re.DOTALL)
    assert "COPY migrations /app/migrations" in text
    user = next(ln for ln in lines if ln.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert "STOPSIGNAL SIGTERM" in lines
    cmd = [ln for ln in lines if ln.startswith("CMD ")][-1]  # not HEALTHCHECK's continuation
    assert json.loads(cmd[4:])[0] == "uvicorn"  # exec form: uvicorn is PID 1, gets SIGTERM
    healthcheck = next((ln for ln in lines if ln.startswith("HEALTHCHECK")), "")
    assert "curl" not in healthcheck and "wget" not in healthcheck


def test_requirements_are_pinned() -> None:
    reqs = [
        ln.split("#")[0].strip()
        for ln in (EXAMPLE / "requirements.txt").read_text().splitlines()
        if ln.split("#")[0].strip()
    ]
    assert reqs
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", req), req
    names = {re.split(r"[\[=]", r)[0].lower() for r in reqs}
    assert {"starlette", "uvicorn", "psycopg", "psycopg-pool"} <= names


def test_example_sources_parse() -> None:
    files = list((EXAMPLE / "app").rglob("*.py")) + list((EXAMPLE / "tests").rglob("*.py"))
    assert files
    for f in files:
        ast.parse(f.read_text(), filename=str(f))


def test_example_tests_import_nothing_from_the_app() -> None:
    for f in (EXAMPLE / "tests").rglob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            assert not any(m == "notes" or m.startswith("notes.") for m in mods), f
