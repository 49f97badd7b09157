"""End to end, examples/memos (Node.js + pg, an image WITHOUT python3) taken local -> dev ->
prod on the test bed with conveyor's built-in migration engine and no extra configuration (no
`migrations.command`): nothing of conveyor runs in the app image. The remote stages run on the
VMs in conveyor's runner container; the engine runs in a temporary container of the runner
image with the migrations copied out of the app image.

The story, in order (the tests share one copy of the example; each builds on the last):
  1. local: `conveyor up` builds and migrates the copy on the main engine, `conveyor test`
     passes the app's own `node --test` suite, `conveyor down --volumes` removes it;
  2. `conveyor build` accepts the python-less image (its fingerprint check copies the
     migrations out of the image), the image has no python3, `conveyor push` pins its digest;
  3. `conveyor setup dev`, `conveyor deploy dev`: conveyor's engine applies the example's
     migrations, the app's `node --test` suite passes against the dev URL;
  4. `conveyor deploy prod` promotes the digest that passed dev (backup, migrate, start,
     validate with the same node suite); the prod VM's copy of the image has no python3;
  5. memos written through the API on prod survive a second release that adds a migration
     (dev, then prod: only the new migration is applied, after a backup);
  6. `conveyor status dev prod` shows both healthy.

Isolation as in tests/e2e/helpers.py (which is specific to examples/notes): a copy under
tmp_path in a git repository of its own, a unique app name (containers `<app>-<env>-*`, its
network, volume and image repository), a free port on each VM's address, state and backup
directories under tmp_path, random database passwords, the test bed's labels on everything
conveyor creates; the local stage has its own compose project, image tag, ports and cache
directory. Everything is removed from both VMs and the main engine at the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import ClassVar

import pytest

from tests.e2e.helpers import ExampleCopy, free_port, http, label_compose_file
from tests.testbed import OWNER_LABEL, TEST_LABEL, testbed_env, vm_docker_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "memos"
MIGRATIONS = sorted(p.name for p in (EXAMPLE / "migrations").iterdir() if p.is_dir())
COLOR = "2030-01-01-000001_add_memos_color"
ENVS = ("dev", "prod")
PROD_STEPS = ["lock", "pull", "plan", "backup", "prepare", "stop", "migrate", "start",
              "health", "validate"]
REHEARSE = "rehearse"  # after the backup, unless the environment says rehearse = "never"
TIMEOUT = 900


def version_of(name: str) -> str:
    return name.split("_", 1)[0].replace("-", "")


class Memos(ExampleCopy):
    """A copy of examples/memos (own git repository), the CLI run against it, the VMs'
    engines and databases for the assertions."""

    def __init__(self, root: Path, testbed: dict) -> None:
        self.root = root
        self.app = f"memos-re2e-{secrets.token_hex(2)}"
        self.dir = root / self.app
        self.addresses = {e: testbed["vms"][e]["address"] for e in ENVS}
        self.ports = {e: free_port(a) for e, a in self.addresses.items()}
        self.passwords = {e: f"e2e-{e}-" + uuid.uuid4().hex[:16] for e in ENVS}
        uid = uuid.uuid4().hex[:8]
        self.local_project = f"cve2ememosr{uid}"
        self.local_image = f"conveyor-e2e-memos-remote-{uid}:local"
        self.local_password = f"pw-{uuid.uuid4().hex}"
        self.local_port, self.local_db_port = free_port("127.0.0.1"), free_port("127.0.0.1")
        bed = testbed_env()
        for name in ("BASE_NODE_IMAGE", "BASE_NODE_BUILD_IMAGE", "BASE_POSTGRES_IMAGE"):
            assert bed.get(name, "").startswith("conveyor-base/"), f"scripts/testbed env: {name}"
        self.registry = bed["CONVEYOR_REGISTRY"]
        self.env = {**os.environ, **bed, "CONVEYOR_ACTOR": "e2e-memos",
                    "COMPOSE_PROJECT_NAME": self.local_project,
                    "MEMOS_APP_PORT": str(self.local_port),
                    "MEMOS_DB_PORT": str(self.local_db_port),
                    "MEMOS_DB_PASSWORD": self.local_password,
                    "CONVEYOR_CACHE_DIR": str(root / "cache"),
                    **{f"MEMOS_{e.upper()}_DB_PASSWORD": pw for e, pw in self.passwords.items()}}
        self.env.pop("DOCKER_HOST", None)
        self.env.pop("DATABASE_URL", None)
        self.vm_envs = {e: vm_docker_env(e) for e in ENVS}
        self.images: list[str] = []  # repository@digest, in the order pushed
        self.built: list[str] = []  # repository:tag, in the order built

    def prepare(self) -> None:
        shutil.copytree(EXAMPLE, self.dir, ignore=shutil.ignore_patterns(
            "node_modules", ".conveyor"))
        toml = (self.dir / "conveyor.toml").read_text()
        toml, n = re.subn(r'(?m)^name = "memos"(\s)', rf'name = "{self.app}"\1', toml, count=1)
        assert n == 1, "the example's app name moved"
        toml, n = re.subn(r'(?m)^image = "memos"(\s)', rf'image = "{self.app}"\1', toml, count=1)
        assert n == 1, "the example's image moved"
        for e in ENVS:
            extra = (f'state_dir = "{self.root / "state" / e}"\n'
                     f'labels = {{ "{TEST_LABEL}" = "1", "{OWNER_LABEL}" = "{os.getpid()}" }}\n')
            assert f"[environments.{e}]\n" in toml
            toml = toml.replace(f"[environments.{e}]\n", f"[environments.{e}]\n" + extra, 1)
            toml, n = re.subn(rf"(?ms)(\[environments\.{e}\].*?^port = )8081",
                              rf"\g<1>{self.ports[e]}", toml, count=1)
            assert n == 1, f"the example's {e} port moved"
        toml, n = re.subn(r'(?m)^dir = "/var/lib/conveyor/backups/memos"$',
                          f'dir = "{self.root / "backups"}"', toml)
        assert n == 1, "the example's prod backup dir moved"
        # what matters here: no migrations.command, the engine is conveyor's own
        assert not re.search(r"(?m)^command\s*=", toml), "the example names a migration command"
        (self.dir / "conveyor.toml").write_text(toml)
        compose = self.dir / "docker-compose.yml"
        text = compose.read_text()
        assert "image: memos:local" in text, "the example's image tag moved"
        compose.write_text(text.replace("image: memos:local", f"image: {self.local_image}"))
        label_compose_file(compose, {TEST_LABEL: "1", OWNER_LABEL: str(os.getpid()),
                                      "conveyor.test.suite": "example-memos-remote"})
        (self.dir / ".gitignore").write_text("node_modules/\n.conveyor/\n")
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.dir)], check=True)
        self.commit("a copy of examples/memos")

    # the CLI
    def run(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "conveyor.main", *args, "-C", str(self.dir)],
                           capture_output=True, text=True, env=self.env, timeout=timeout,
                           stdin=subprocess.DEVNULL, check=False)
        for pw in (*self.passwords.values(), self.local_password):
            assert pw not in p.stdout + p.stderr, f"a password leaked by conveyor {args}"
        return p

    def history(self, env: str) -> list[dict]:
        return json.loads(self.ok("history", env, "--json").stdout)

    def build_and_push(self) -> tuple[str, subprocess.CompletedProcess]:
        built = self.ok("build")
        self.built.append(json.loads(
            (self.dir / ".conveyor" / "images.json").read_text())["built"][-1]["ref"])
        image = self.result(self.ok("push", "--json"))["image"]
        self.images.append(image)
        return image, built

    def sh_in_image(self, env: str | None, image: str, script: str
                    ) -> subprocess.CompletedProcess:
        """`docker run --entrypoint sh IMAGE -c script` (no network, labelled, removed)."""
        return self.docker(env, "run", "--rm", "--network", "none",
                           "--label", f"{TEST_LABEL}=1", "--label", f"{OWNER_LABEL}={os.getpid()}",
                           "--entrypoint", "sh", image, "-c", script, check=False)

    def psql(self, env: str, sql: str) -> list[str]:
        out = self.docker(env, "exec", self.container(env, "db"), "psql", "-XAtq",
                          "-v", "ON_ERROR_STOP=1", "-U", "memos", "-d", "memos", "-c", sql).stdout
        return [line for line in out.splitlines() if line]

    def diesel(self, env: str) -> list[str]:
        return self.psql(env, "SELECT version FROM __diesel_schema_migrations ORDER BY 1")

    def columns(self, env: str) -> list[str]:
        return self.psql(env, "SELECT column_name FROM information_schema.columns WHERE "
                              "table_name = 'memos' ORDER BY ordinal_position")



class State:
    """What the tests learn along the way."""

    dev_ok: ClassVar[dict] = {}
    prod_first: ClassVar[dict] = {}
    rows: ClassVar[list[str]] = []


@pytest.fixture(scope="module")
def m(testbed, tmp_path_factory):
    project = Memos(tmp_path_factory.mktemp("memos-remote"), testbed)
    try:
        project.prepare()
        project.cleanup()  # nothing of an earlier run with the same names (there is none)
        yield project
    finally:
        project.cleanup()


def prod_steps(rec: dict) -> dict[str, str]:
    """A prod deployment's steps -> status, in order: the seed's list (+ the rehearsal)."""
    steps = {s["name"]: s["status"] for s in rec["steps"]}
    assert [n for n in steps if n != REHEARSE] == PROD_STEPS, list(steps)
    if REHEARSE in steps:
        assert list(steps).index(REHEARSE) == PROD_STEPS.index("backup") + 1, list(steps)
    return steps


def serves(m: Memos, env: str, version: str | None = None) -> None:
    """The app answers on the VM's address, database included (write, read, delete)."""
    status, body = http("GET", m.url(env) + "/health")
    assert status == 200 and body["status"] == "ok" and body["database"] == "ok", (status, body)
    status, memo = http("POST", m.url(env) + "/memos", {"title": "e2e " + uuid.uuid4().hex})
    assert status == 201, memo
    assert http("GET", f"{m.url(env)}/memos/{memo['id']}")[0] == 200
    assert http("DELETE", f"{m.url(env)}/memos/{memo['id']}")[0] == 204


# --------------------------------------------------------------------------- 1 local


def test_local_stage_up_test_down(m):
    p = m.ok("up")
    assert f"applied {len(MIGRATIONS)}: " + ", ".join(MIGRATIONS) in p.stdout, p.stdout
    status, body = http("GET", f"http://127.0.0.1:{m.local_port}/health")
    assert status == 200 and body["database"] == "ok", (status, body)
    p = m.ok("test")
    assert "# fail 0" in p.stdout and re.search(r"# pass [1-9]", p.stdout), p.stdout
    m.ok("down", "--volumes")
    assert http("GET", f"http://127.0.0.1:{m.local_port}/health")[0] is None


# --------------------------------------------------------------------------- 2 build, push


def test_build_accepts_the_image_without_python3_and_push_pins_its_digest(m):
    image, built = m.build_and_push()
    out = built.stdout
    # the fingerprint check copied the migrations out of the image (nothing ran in it)
    assert f"{len(MIGRATIONS)} migrations, fingerprint checked in the image" in out, out
    ref = m.built[-1]
    head = m.git("rev-parse", "HEAD")
    assert ref == f"{m.registry}/{m.app}:{head[:12]}"
    repo, digest = image.split("@")
    assert repo == f"{m.registry}/{m.app}" and re.fullmatch(r"sha256:[0-9a-f]{64}", digest)

    # a control first (the shell and node are there), then python3's absence
    p = m.sh_in_image(None, ref, "command -v node")
    assert p.returncode == 0 and p.stdout.strip(), p.stdout + p.stderr
    p = m.sh_in_image(None, ref, "command -v python3")
    assert p.returncode != 0 and not p.stdout.strip(), f"python3 in {ref}: {p.stdout}"
    p = m.sh_in_image(None, ref, "ls /app/migrations")
    assert p.returncode == 0 and p.stdout.split() == MIGRATIONS, p.stdout + p.stderr


# --------------------------------------------------------------------------- 3 dev


def test_setup_and_deploy_dev_with_the_built_in_engine_and_the_node_suite(m, tmp_path):
    m.ok("setup", "dev")
    junit = tmp_path / "junit.xml"
    p = m.ok("deploy", "dev", "--junit", str(junit))
    assert "# fail 0" in p.stdout and re.search(r"# pass [1-9]", p.stdout), p.stdout
    dev_id = re.search(r"deployment (\S+)", p.stdout).group(1)

    rec = json.loads(m.ok("history", "dev", dev_id, "--json").stdout)
    assert rec["result"] == "ok" and rec["image"] == m.images[-1]
    assert [s["name"] for s in rec["steps"]] == ["lock", "pull", "migrate", "replace",
                                                 "health", "test"]
    assert all(s["status"] == "ok" for s in rec["steps"])
    assert rec["migrations_applied"] == MIGRATIONS
    assert rec["tests"]["ok"] is True and rec["tests"]["exit_code"] == 0
    assert rec["tests"]["command"] == "node --test tests/"
    suites = list(ET.parse(junit).getroot().iter("testsuite"))
    assert suites and all(s.get("failures") == "0" and s.get("errors") == "0" for s in suites)
    out = "".join(e.text or "" for e in suites[0].iter("system-out"))
    assert "# fail 0" in out and re.search(r"# pass [1-9]", out), out
    State.dev_ok = rec

    # conveyor's engine applied the example's migrations: the Diesel table lists them
    assert m.diesel("dev") == [version_of(n) for n in MIGRATIONS]
    assert {"id", "title", "body", "done", "created_at"} <= set(m.columns("dev"))
    assert m.app_label("dev", "conveyor.image") == m.images[-1]
    assert m.docker("dev", "port", m.container("dev")).stdout.strip() == \
        f"3000/tcp -> {m.addresses['dev']}:{m.ports['dev']}"
    serves(m, "dev")
    # no migration container outlived its step; the runner is done (its exited container is
    # removed as the run ends, in the background: it may still be there, exited or going)
    left = dict(line.split(" ", 1) for line in m.docker(
        "dev", "ps", "-a", "--format", "{{.Names}} {{.State}}", "--filter",
        f"label=conveyor.app={m.app}").stdout.splitlines())
    assert left.pop(m.container("dev")) == "running", left
    assert left.pop(m.container("dev", "db")) == "running", left
    assert left.pop(m.container("dev", "runner"), "exited") in ("exited", "removing"), left
    assert left == {}, left


# --------------------------------------------------------------------------- 4 prod


def test_deploy_prod_promotes_the_digest_that_passed_dev(m):
    m.ok("setup", "prod")
    r = m.ok("deploy", "prod", "--json")
    rec = m.result(r)["deployment"]
    assert rec["result"] == "ok", rec
    assert rec["image"] == m.images[-1] == State.dev_ok["image"]
    assert all(v == "ok" for v in prod_steps(rec).values()), rec["steps"]
    assert rec["details"]["provenance"]["source_deployment"] == State.dev_ok["id"]
    assert rec["details"]["pending"] == MIGRATIONS
    assert rec["migrations_applied"] == MIGRATIONS
    assert rec["details"]["backup"]["id"]
    State.prod_first = rec

    assert m.diesel("prod") == [version_of(n) for n in MIGRATIONS]
    assert {"id", "title", "body", "done", "created_at"} <= set(m.columns("prod"))
    assert m.app_label("prod", "conveyor.image") == State.dev_ok["image"]
    # the validation's memos were deleted again by the node suite
    assert m.psql("prod", "SELECT count(*) FROM memos") == ["0"]
    serves(m, "prod")

    # the image the prod VM pulled and runs (by digest) has no python3 either
    image = State.dev_ok["image"]
    p = m.sh_in_image("prod", image, "command -v node")
    assert p.returncode == 0 and p.stdout.strip(), p.stdout + p.stderr
    p = m.sh_in_image("prod", image, "command -v python3")
    assert p.returncode != 0 and not p.stdout.strip(), f"python3 in {image}: {p.stdout}"


# --------------------------------------------------------------------------- 5 rows survive


def test_rows_written_on_prod_survive_a_release_that_adds_a_migration(m):
    for title, body in (("alpha", "first"), ("beta", ""), ("gamma", "ünïcödé"), ("delta", "x")):
        status, memo = http("POST", m.url("prod") + "/memos", {"title": title, "body": body})
        assert status == 201, memo
    State.rows = m.psql("prod", "SELECT id, title, body, done, created_at FROM memos "
                                "ORDER BY id")
    assert len(State.rows) == 4

    d = m.dir / "migrations" / COLOR
    d.mkdir()
    (d / "up.sql").write_text("ALTER TABLE memos ADD COLUMN color text;\n")
    (d / "down.sql").write_text("ALTER TABLE memos DROP COLUMN color;\n")
    m.commit(f"migration {COLOR}")
    image, built = m.build_and_push()
    assert f"{len(MIGRATIONS) + 1} migrations, fingerprint checked in the image" in built.stdout
    rec = m.result(m.ok("deploy", "dev", "--json"))["deployment"]
    assert rec["result"] == "ok" and rec["image"] == image
    assert rec["migrations_applied"] == [COLOR] and rec["tests"]["ok"] is True
    assert m.diesel("dev")[-1] == version_of(COLOR)

    r = m.ok("deploy", "prod", "--json")
    prod = m.result(r)["deployment"]
    assert prod["result"] == "ok" and prod["image"] == image
    steps = prod_steps(prod)
    assert all(v == "ok" for v in steps.values()), prod["steps"]
    # real rows and a pending migration: it was rehearsed on a scratch restore of the backup
    # (conveyor's engine again, in the runner image, on the migrations copied out of the image)
    assert steps.get(REHEARSE) == "ok", prod["steps"]
    rehearsal = prod["details"]["rehearsal"]
    assert rehearsal["rehearsed"] is True, rehearsal
    assert [(x["name"], x["ok"]) for x in rehearsal["migrations"]] == [(COLOR, True)], rehearsal
    assert prod["details"]["provenance"]["source_deployment"] == rec["id"]
    assert prod["previous_image"] == State.prod_first["image"]
    assert prod["details"]["pending"] == [COLOR]
    assert prod["migrations_applied"] == [COLOR]
    backup = prod["details"]["backup"]
    assert backup["id"] and backup["id"] != State.prod_first["details"]["backup"]["id"]
    assert backup["size"] > 0

    assert m.diesel("prod") == [version_of(n) for n in [*MIGRATIONS, COLOR]]
    assert "color" in m.columns("prod")
    assert m.psql("prod", "SELECT id, title, body, done, created_at FROM memos "
                          "ORDER BY id") == State.rows
    status, listed = http("GET", m.url("prod") + "/memos?limit=500")
    assert status == 200
    assert sorted(x["title"] for x in listed["memos"]) == ["alpha", "beta", "delta", "gamma"]
    assert m.app_label("prod", "conveyor.image") == image
    serves(m, "prod")
    backups = json.loads(m.ok("backups", "prod", "--json").stdout)
    assert {State.prod_first["details"]["backup"]["id"], backup["id"]} <= {
        b["id"] for b in backups}


# --------------------------------------------------------------------------- 6 status


def test_status_of_dev_and_prod_shows_both_healthy(m):
    st = json.loads(m.ok("status", "dev", "prod", "--json").stdout)
    assert set(st) == {"dev", "prod"}
    want = [*MIGRATIONS, COLOR]
    for e in ENVS:
        s = st[e]
        assert s["app"]["state"] == "running" and s["app"]["image"] == m.images[-1], s["app"]
        assert s["db"]["state"] == "running"
        assert s["health"]["ok"] is True and s["health"]["status"] == 200
        assert s["url"] == m.url(e)
        mig = s["migrations"]
        assert mig["ok"] is True, mig
        assert [a["name"] for a in mig["applied"]] == want
        assert mig["pending"] == [] and mig["drift"] == []
        assert s["last_deployment"]["result"] == "ok"
        assert s["lock"] is None
        runner = s.get("runner") or {}
        assert not runner.get("running") and not runner.get("interrupted"), runner
    human = m.ok("status", "dev", "prod").stdout
    for e in ENVS:
        assert f"{e}: " in human and f"GET {m.url(e)}/health -> 200" in human, human
    assert human.count(f"{len(want)} applied; pending: none") == 2, human
    assert human.count("drift       none") == 2, human
