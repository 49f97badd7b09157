"""End to end, the local stage of examples/memos (Node.js + pg, an image WITHOUT python3) on the
test bed's Docker engine: `conveyor up` from nothing builds the two-stage image from the offline
node bases, conveyor's built-in engine applies the Diesel-layout migrations (nothing of conveyor
runs in the image), the app's own HTTP tests (`node --test tests/`) pass through
`conveyor test`, and `conveyor down --volumes` removes it all.

Isolation as in test_local.py: a copy of the example under tmp_path, its own compose project,
image tag, free ports on 127.0.0.1, cache directory and database password; the copy's compose
file labels containers, network and volume with conveyor.test=1 and the owner PID, so
`scripts/testbed up` removes leftovers of a crashed run. The tests run in order on one stack.
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
EXAMPLE = REPO / "examples" / "memos"
CONVEYOR = Path(sys.executable).parent / "conveyor"
MIGRATIONS = sorted(p.name for p in (EXAMPLE / "migrations").iterdir() if p.is_dir())
SUITE = "example-memos-local"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _version(name: str) -> str:
    return name.split("_", 1)[0].replace("-", "")


class Stack:
    """A copy of examples/memos and the CLI run against it."""

    def __init__(self, root: Path, env: dict[str, str], project: str, image: str,
                 password: str, app_port: int, db_port: int) -> None:
        self.dir = root
        self.env = env
        self.project = project
        self.image = image
        self.password = password
        self.url = f"http://127.0.0.1:{app_port}"
        self.db_url = f"postgresql://memos:{password}@127.0.0.1:{db_port}/memos"

    def conveyor(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([str(CONVEYOR), *args, "-C", str(self.dir)], capture_output=True,
                           text=True, env=self.env, timeout=timeout, stdin=subprocess.DEVNULL,
                           check=False)
        assert self.password not in p.stdout + p.stderr, f"password leaked by conveyor {args}"
        return p

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        p = self.conveyor(*args)
        assert p.returncode == 0, (f"conveyor {' '.join(args)} exited {p.returncode}:\n"
                                   f"{p.stdout}\n{p.stderr}")
        return p

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env,
                              timeout=120, check=check)

    def in_image(self, script: str) -> subprocess.CompletedProcess[str]:
        """`sh -c script` in a throw-away container of the app image (no network, labelled)."""
        return self.docker("run", "--rm", "--network", "none", "--label", f"{TEST_LABEL}=1",
                           "--label", f"{OWNER_LABEL}={os.getpid()}", "--entrypoint", "sh",
                           self.image, "-c", script, check=False)

    def applied_versions(self) -> list[str]:
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            return [r[0] for r in conn.execute(
                "SELECT version FROM __diesel_schema_migrations ORDER BY version")]

    def columns(self) -> set[str]:
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            return {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'memos'")}

    def project_objects(self, kind: str) -> list[str]:
        extra = ["--all"] if kind == "container" else []
        return self.docker(kind, "ls", *extra, "--quiet", "--filter",
                           f"label=com.docker.compose.project={self.project}").stdout.split()


@pytest.fixture(scope="module")
def stack(testbed, tmp_path_factory) -> Stack:
    uid = uuid.uuid4().hex[:8]
    project = f"cve2ememos{uid}"
    image = f"conveyor-e2e-memos-{uid}:local"
    root = tmp_path_factory.mktemp("memos-local") / "memos"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("node_modules", ".conveyor"))
    compose = root / "docker-compose.yml"
    text = compose.read_text()
    assert "image: memos:local" in text, "the example's image tag moved"
    compose.write_text(text.replace("image: memos:local", f"image: {image}"))
    label_compose_file(compose, {TEST_LABEL: "1", OWNER_LABEL: str(os.getpid()),
                                  "conveyor.test.suite": SUITE})
    password = f"pw-{uuid.uuid4().hex}"
    app_port, db_port = _free_port(), _free_port()
    env = main_docker_env({**os.environ, **testbed_env()})
    env.pop("DATABASE_URL", None)
    env.update({
        "COMPOSE_PROJECT_NAME": project, "MEMOS_APP_PORT": str(app_port),
        "MEMOS_DB_PORT": str(db_port), "MEMOS_DB_PASSWORD": password,
        "CONVEYOR_CACHE_DIR": str(root.parent / "cache"),
        "PATH": f"{CONVEYOR.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    for name in ("BASE_NODE_IMAGE", "BASE_NODE_BUILD_IMAGE", "BASE_POSTGRES_IMAGE"):
        assert env.get(name, "").startswith("conveyor-base/"), f"scripts/testbed env: {name}"
    s = Stack(root, env, project, image, password, app_port, db_port)
    yield s
    s.conveyor("down", "--volumes")
    s.docker("image", "rm", "--force", image, check=False)


def test_up_from_nothing_builds_without_python_and_the_engine_applies_every_migration(stack):
    assert not stack.project_objects("container")
    p = stack.ok("up")
    out = p.stdout
    for step in ("docker", "compose file", "image", "containers", "postgres", "migrations",
                 "health"):
        assert f"✓ {step}" in out, out
    assert f"applied {len(MIGRATIONS)}: " + ", ".join(MIGRATIONS) in out, out
    assert f"up: {stack.url}" in out and f"{stack.image} (" in out and "built)" in out
    assert stack.applied_versions() == [_version(n) for n in MIGRATIONS]
    assert {"id", "title", "body", "done", "created_at"} <= stack.columns()

    health = httpx.get(stack.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    created = httpx.post(stack.url + "/memos", json={"title": "from e2e", "body": "local"},
                         timeout=10)
    assert created.status_code == 201, created.text
    back = httpx.get(f"{stack.url}/memos/{created.json()['id']}", timeout=10)
    assert back.status_code == 200 and back.json()["title"] == "from e2e"


def test_the_image_holds_no_python3_and_carries_the_migrations(stack):
    # a control first: the shell and node are there, so a failing `command -v` means absence
    p = stack.in_image("command -v node && node --version")
    assert p.returncode == 0 and p.stdout.strip(), p.stdout + p.stderr
    for absent in ("python3", "python", "npm"):
        p = stack.in_image(f"command -v {absent}")
        assert p.returncode != 0, f"{absent} found in {stack.image}: {p.stdout}"
    p = stack.in_image("ls /usr/bin /usr/local/bin /usr/lib | grep -i python || true")
    assert p.stdout.strip() == "", f"python files in {stack.image}: {p.stdout}"
    p = stack.in_image("ls /app/migrations")
    assert p.returncode == 0 and p.stdout.split() == MIGRATIONS, p.stdout + p.stderr
    config = json.loads(stack.docker("image", "inspect", stack.image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["node", "src/server.js"]


def test_start_line_names_the_revision_and_logs_show_requests(stack):
    p = stack.docker("run", "--rm", "--network", "none", "--label", f"{TEST_LABEL}=1",
                     "--label", f"{OWNER_LABEL}={os.getpid()}", "-e", "APP_REVISION=rev-e2e-1",
                     "-e", "DATABASE_URL=postgresql://memos:x@127.0.0.1:1/memos",
                     stack.image, "timeout", "-s", "TERM", "2", "node", "src/server.js",
                     check=False)
    assert "memos dev revision rev-e2e-1 started on 0.0.0.0:3000" in p.stdout, \
        p.stdout + p.stderr
    assert "stopped" in p.stdout  # SIGTERM handled by node itself
    logs = stack.ok("logs", "app", "--tail", "50", "--all").stdout
    assert "memos dev started on 0.0.0.0:3000" in logs and "GET /health 200" in logs, logs


def test_conveyor_test_runs_the_node_suite_and_passes_its_exit_code_through(stack):
    p = stack.conveyor("test")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "# fail 0" in p.stdout and "# pass 5" in p.stdout, p.stdout
    assert f"APP_URL={stack.url}" in p.stderr
    failing = stack.dir / "tests" / "zz_fails.test.js"
    failing.write_text("require('node:test')('fails', () => { throw new Error('no'); });\n")
    try:
        p = stack.conveyor("test")
        assert p.returncode != 0 and "# fail 1" in p.stdout, p.stdout + p.stderr
    finally:
        failing.unlink()


def test_second_up_is_a_no_op(stack):
    containers = sorted(stack.project_objects("container"))
    p = stack.ok("up")
    assert "nothing changed" in p.stdout, p.stdout
    assert "no build" in p.stdout and "no pending migrations" in p.stdout
    assert sorted(stack.project_objects("container")) == containers


def test_a_new_migration_is_applied_by_the_next_up(stack):
    name = "2030-01-01-000001_add_memos_color"
    d = stack.dir / "migrations" / name
    d.mkdir()
    (d / "up.sql").write_text("ALTER TABLE memos ADD COLUMN color text;\n")
    (d / "down.sql").write_text("ALTER TABLE memos DROP COLUMN color;\n")
    p = stack.ok("up")
    assert f"applied 1: {name}" in p.stdout, p.stdout
    assert stack.applied_versions()[-1] == _version(name)
    assert "color" in stack.columns()
    st = json.loads(stack.ok("status", "--json").stdout)
    assert st["health"]["ok"] is True
    assert len(st["migrations"]["applied"]) == len(MIGRATIONS) + 1
    assert st["migrations"]["pending"] == [] and st["migrations"]["drift"] == []


def test_down_volumes_removes_everything(stack):
    p = stack.ok("down", "--volumes")
    assert "data is lost" in p.stdout, p.stdout
    assert stack.project_objects("container") == []
    assert stack.project_objects("volume") == []
