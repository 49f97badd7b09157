"""End to end, the local stage on the real Docker engine: the `conveyor` CLI (as a subprocess)
brings up a copy of examples/notes from nothing and through its life: a no-op second `up`,
migrations added later, a broken migration, `down` with and without `--volumes`.

Isolation: a copy of the example under tmp_path (added migrations never touch the repository),
its own compose project, image tag, free ports on 127.0.0.1, cache directory and database
password; the compose file of the copy labels the containers, the network and the volume with
conveyor.test=1 and the owner PID, so `scripts/testbed up` removes leftovers of a crashed run.
The stack is always taken down with its volumes at the end.

The tests of this module run in order and share one stack (each step builds on the last).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.helpers import label_compose_file
from tests.testbed import OWNER_LABEL, TEST_LABEL, main_docker_env, testbed_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"
CONVEYOR = Path(sys.executable).parent / "conveyor"
ORIGINAL_MIGRATIONS = sorted(p.name for p in (EXAMPLE / "migrations").iterdir() if p.is_dir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remove_stale_projects(env: dict[str, str]) -> None:
    """Containers/volumes/networks of earlier runs of this module whose owner is gone."""
    for kind in ("container", "volume", "network"):
        listing = subprocess.run(
            ["docker", kind, "ls", *(["--all"] if kind == "container" else []), "--quiet",
             "--filter", f"label={TEST_LABEL}=1", "--filter", "label=conveyor.test.suite=local"],
            capture_output=True, text=True, env=env, timeout=60, check=False)
        for obj in listing.stdout.split():
            owner = subprocess.run(
                ["docker", kind, "inspect", "--format",
                 '{{index .Config.Labels "' + OWNER_LABEL + '"}}' if kind == "container" else
                 '{{index .Labels "' + OWNER_LABEL + '"}}', obj],
                capture_output=True, text=True, env=env, timeout=60, check=False).stdout.strip()
            if owner.isdigit() and Path(f"/proc/{owner}").exists():
                continue
            rm = ["docker", kind, "rm", *(["--force"] if kind == "container" else []), obj]
            subprocess.run(rm, capture_output=True, env=env, timeout=120, check=False)


class Stack:
    """A copy of examples/notes and the CLI run against it."""

    def __init__(self, root: Path, env: dict[str, str], project: str, image: str,
                 password: str, app_port: int, db_port: int) -> None:
        self.dir = root
        self.env = env
        self.project = project
        self.image = image
        self.password = password
        self.url = f"http://127.0.0.1:{app_port}"
        self.db_url = f"postgresql://notes:{password}@127.0.0.1:{db_port}/notes"

    def conveyor(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 900) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([str(CONVEYOR), *args], capture_output=True, text=True,
                           env=env or self.env, timeout=timeout, stdin=subprocess.DEVNULL,
                           check=False)
        # a secret never reaches the output, whatever the command
        assert self.password not in p.stdout + p.stderr, f"password leaked by conveyor {args}"
        return p

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        p = self.conveyor(*args)
        assert p.returncode == 0, f"conveyor {' '.join(args)} exited {p.returncode}:\n" \
                                  f"{p.stdout}\n{p.stderr}"
        return p

    def add_migration(self, name: str, up: str, down: str = "") -> str:
        d = self.dir / "migrations" / name
        d.mkdir()
        (d / "up.sql").write_text(up)
        (d / "down.sql").write_text(down)
        return name

    def applied_versions(self) -> list[str]:
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            return [r[0] for r in conn.execute(
                "SELECT version FROM __diesel_schema_migrations ORDER BY version")]

    def columns(self) -> set[str]:
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            return {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'notes'")}

    def docker(self, *args: str) -> str:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env,
                              timeout=120, check=True).stdout

    def project_objects(self, kind: str) -> list[str]:
        extra = ["--all"] if kind == "container" else []
        return self.docker(kind, "ls", *extra, "--quiet", "--filter",
                           f"label=com.docker.compose.project={self.project}").split()


def _version(name: str) -> str:
    return name.split("_", 1)[0].replace("-", "")


@pytest.fixture(scope="module")
def stack(testbed, tmp_path_factory) -> Stack:
    uid = uuid.uuid4().hex[:8]
    project = f"cve2elocal{uid}"
    image = f"conveyor-e2e-notes-{uid}:local"
    root = tmp_path_factory.mktemp("local") / "notes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    compose = root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("image: notes:local", f"image: {image}"))
    label_compose_file(compose, {TEST_LABEL: "1", OWNER_LABEL: str(os.getpid()),
                                  "conveyor.test.suite": "local"})
    password = f"pw-{uuid.uuid4().hex}"
    app_port, db_port = _free_port(), _free_port()
    env = main_docker_env({**os.environ, **testbed_env()})
    env.pop("DATABASE_URL", None)
    env.update({
        "COMPOSE_PROJECT_NAME": project, "NOTES_APP_PORT": str(app_port),
        "NOTES_DB_PORT": str(db_port), "NOTES_DB_PASSWORD": password,
        "CONVEYOR_CACHE_DIR": str(root.parent / "cache"),
        "PATH": f"{CONVEYOR.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    _remove_stale_projects(env)
    s = Stack(root, env, project, image, password, app_port, db_port)
    yield s
    s.conveyor("down", "-C", str(root), "--volumes")
    subprocess.run(["docker", "image", "rm", "--force", image], capture_output=True, env=env,
                   timeout=120, check=False)


def test_up_from_nothing_serves_the_api_and_applies_every_migration(stack):
    assert not stack.project_objects("container")
    p = stack.ok("up", "-C", str(stack.dir))
    out = p.stdout
    for step in ("docker", "compose file", "image", "containers", "postgres", "migrations",
                 "health"):
        assert f"✓ {step}" in out, out
    assert f"applied {len(ORIGINAL_MIGRATIONS)}: " in out
    assert f"up: {stack.url}" in out and f"{stack.image} (" in out and "built)" in out

    assert httpx.get(stack.url + "/health", timeout=10).status_code == 200
    created = httpx.post(stack.url + "/notes", json={"title": "from e2e", "body": "local"},
                         timeout=10)
    assert created.status_code == 201, created.text
    back = httpx.get(f"{stack.url}/notes/{created.json()['id']}", timeout=10)
    assert back.status_code == 200 and back.json()["title"] == "from e2e"
    assert stack.applied_versions() == [_version(n) for n in ORIGINAL_MIGRATIONS]


def test_conveyor_test_runs_the_example_suite_and_passes_its_exit_code_through(stack):
    p = stack.conveyor("test", "-C", str(stack.dir))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "passed" in p.stdout and f"APP_URL={stack.url}" in p.stderr
    failing = stack.dir / "tests" / "test_zz_fails.py"
    failing.write_text("def test_fails():\n    assert False\n")
    try:
        p = stack.conveyor("test", "-C", str(stack.dir))
        assert p.returncode == 1, p.stdout + p.stderr
    finally:
        failing.unlink()


def test_second_up_is_a_no_op_and_says_so(stack):
    containers = sorted(stack.project_objects("container"))
    p = stack.ok("up", "-C", str(stack.dir))
    assert "nothing changed" in p.stdout, p.stdout
    assert "no build" in p.stdout and "no pending migrations" in p.stdout
    events = [json.loads(line) for line in
              stack.ok("up", "-C", str(stack.dir), "--json").stdout.splitlines()]
    result = events[-1]
    assert result["event"] == "result" and result["nothing_changed"] is True
    assert result["built"] is False and result["migrations_applied"] == []
    assert [e["step"] for e in events if e["event"] == "step_finished"] == [
        "docker", "compose file", "image", "containers", "postgres", "migrations", "health"]
    assert sorted(stack.project_objects("container")) == containers


def test_status_and_logs(stack):
    st = json.loads(stack.ok("status", "-C", str(stack.dir), "--json").stdout)
    assert {(c["service"], c["state"]) for c in st["containers"]} == {
        ("app", "running"), ("db", "running")}
    assert st["health"]["ok"] is True
    assert len(st["migrations"]["applied"]) == len(ORIGINAL_MIGRATIONS)
    assert st["migrations"]["pending"] == [] and st["migrations"]["drift"] == []
    logs = stack.ok("logs", "app", "--tail", "50", "--all", "-C", str(stack.dir)).stdout
    assert "/health" in logs
    stack.ok("logs", "local", "db", "--tail", "5", "-C", str(stack.dir))


def test_new_migration_is_applied_alone_by_migrate_run(stack):
    name = stack.add_migration("2030-01-01-000001_add_notes_tags",
                               "ALTER TABLE notes ADD COLUMN tags text NOT NULL DEFAULT '';\n",
                               "ALTER TABLE notes DROP COLUMN tags;\n")
    p = stack.ok("migrate", "-C", str(stack.dir), "run")
    applied = [line for line in p.stdout.splitlines() if line.startswith("Applied ")]
    assert len(applied) == 1 and name in applied[0], p.stdout
    assert stack.applied_versions()[-1] == _version(name)
    assert "tags" in stack.columns()


def test_next_up_applies_the_next_new_migration(stack):
    name = stack.add_migration("2030-01-02-000001_add_notes_color",
                               "ALTER TABLE notes ADD COLUMN color text;\n",
                               "ALTER TABLE notes DROP COLUMN color;\n")
    p = stack.ok("up", "-C", str(stack.dir))
    assert f"applied 1: {name}" in p.stdout, p.stdout
    assert "nothing changed" not in p.stdout
    assert stack.applied_versions() == [_version(n) for n in ORIGINAL_MIGRATIONS] + [
        "20300101000001", "20300102000001"]
    assert httpx.get(stack.url + "/health", timeout=10).status_code == 200


def test_broken_migration_fails_up_and_leaves_the_schema_as_it_was(stack):
    before_versions = stack.applied_versions()
    before_columns = stack.columns()
    name = stack.add_migration(
        "2030-01-03-000001_broken",
        "ALTER TABLE notes ADD COLUMN half_done integer;\nSELECT * FROM no_such_table;\n")
    try:
        p = stack.conveyor("up", "-C", str(stack.dir))
        assert p.returncode == 8, p.stdout + p.stderr
        assert "✗ migrations failed" in p.stdout
        assert "lines of the db container's log" in p.stdout
        assert name in p.stderr and "no_such_table" in p.stderr, p.stderr
        assert stack.applied_versions() == before_versions
        assert stack.columns() == before_columns  # the ALTER before the error was rolled back
    finally:
        shutil.rmtree(stack.dir / "migrations" / name)
    p = stack.ok("up", "-C", str(stack.dir))  # fixed: back to normal
    assert "no pending migrations" in p.stdout


def test_down_keeps_the_data_and_down_volumes_deletes_it(stack):
    note = httpx.post(stack.url + "/notes", json={"title": "survives down"}, timeout=10).json()
    p = stack.ok("down", "-C", str(stack.dir))
    assert "kept" in p.stdout
    assert stack.project_objects("container") == []
    assert len(stack.project_objects("volume")) == 1

    stack.ok("up", "-C", str(stack.dir))
    back = httpx.get(f"{stack.url}/notes/{note['id']}", timeout=10)
    assert back.status_code == 200 and back.json()["title"] == "survives down"

    p = stack.ok("down", "-C", str(stack.dir), "--volumes")
    assert "warning" in p.stdout and "data is lost" in p.stdout
    assert stack.project_objects("container") == []
    assert stack.project_objects("volume") == []

    p = stack.ok("up", "-C", str(stack.dir))  # a fresh database: every migration again
    assert "applied 5: " in p.stdout
    assert httpx.get(f"{stack.url}/notes/{note['id']}", timeout=10).status_code == 404


# ------------------------------------------------------------------ failures that name a way out


def test_no_docker_engine_is_one_line_naming_both_ways_out(stack, tmp_path):
    env = {**stack.env, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    p = stack.conveyor("up", "-C", str(stack.dir), env=env)
    assert p.returncode == 3, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "no Docker engine answers" in lines[0] and "start your Docker engine" in lines[0]
    assert 'scripts/testbed up && eval "$(scripts/testbed env)"' in lines[0]


def test_unpullable_base_image_names_the_base_image_option(stack):
    missing = "127.0.0.1:5000/conveyor-e2e-missing/python:nope"
    env = {**stack.env, "BASE_PYTHON_IMAGE": missing}
    # a different build arg: the image's inputs changed, so `up` builds, and the build pulls
    p = stack.conveyor("up", "-C", str(stack.dir), env=env)
    assert p.returncode == 17, p.stdout + p.stderr  # ImageUnavailable
    assert "✗ image failed" in p.stdout
    assert missing in p.stderr and "`app.build_args.BASE_IMAGE`" in p.stderr
    assert "$BASE_PYTHON_IMAGE" in p.stderr and "scripts/testbed env" in p.stderr
