"""End to end, examples/ledger (a Python app migrated by ALEMBIC, SQLAlchemy from PyPI) taken
local -> dev -> prod on the test bed with `migrations.command = ["alembic", "upgrade", "head"]`:
conveyor runs the project's own tool in a temporary container of the app image, with the app's
environment. The example's alembic/env.py refuses to run without LEDGER_SECRET_KEY (a secret of
each environment) and LEDGER_CURRENCY (app.env): settings only the app's environment provides.

The story, in order (the tests share one copy of the example; each builds on the last):
  1. local: `conveyor up` runs `alembic upgrade head` (the summary says so), the app works,
     `conveyor status` shows `alembic current`'s revision, `conveyor down --volumes`;
  2. build, push; the image's alembic refuses to run without the app's settings;
  3. `conveyor deploy dev`: the tool migrates dev (alembic_version = 0001), the smoke test
     passes against the dev URL;
  4. `conveyor deploy prod`: backup, the tool migrates prod, validation;
  5. a second revision (0002: a column) to dev, then prod: the prod plan shows `alembic
     current`'s output (0001) and the linted SQL of the pending range only; rows survive;
     `conveyor status` shows the tool's status (0002);
  6. a revision that fails on prod's data (0003: a CHECK constraint that a refund row breaks)
     passes dev, then fails on prod: first caught by the rehearsal on a scratch restore (prod
     never stopped), then, with the rehearsal off, in the migrate step itself: the previous
     version serves again on the VM's address, rows and schema are intact, and the error
     names the pre-deploy backup as the way back.
  7. `conveyor rollback prod --migrations`: the tool's revert_command (`alembic downgrade -1`)
     runs in the serving image, v1 serves again on 0001, the rows stay.

Isolation as in test_example_memos_remote.py: a copy under tmp_path in a git repository of its
own, a unique app name (containers `<app>-<env>-*`, network, volume, image repository), free
ports, state and backup directories under tmp_path, random secrets and passwords (checked never
to appear in conveyor's output), the test bed's labels on everything conveyor creates; the local
stage has its own compose project, image tag, ports and cache directory.
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
from pathlib import Path
from typing import ClassVar

import pytest

from tests.e2e.helpers import ExampleCopy, free_port, http, label_compose_file
from tests.testbed import OWNER_LABEL, TEST_LABEL, testbed_env, vm_docker_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ledger"
ENVS = ("dev", "prod")
TIMEOUT = 900

REVISION_2 = '''"""add a memo to each entry"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("entries", sa.Column("memo", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("entries", "memo")
'''

# passes on dev (no refund there), fails on prod's data (a refund: a negative amount)
REVISION_3 = '''"""amounts are positive"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_check_constraint("entries_amount_positive", "entries", "amount_cents > 0")


def downgrade() -> None:
    op.drop_constraint("entries_amount_positive", "entries", type_="check")
'''


class Ledger(ExampleCopy):
    """A copy of examples/ledger (own git repository), the CLI run against it, the engines and
    databases for the assertions."""

    def __init__(self, root: Path, testbed: dict) -> None:
        self.root = root
        self.app = f"ledger-e2e-{secrets.token_hex(2)}"
        self.dir = root / self.app
        self.addresses = {e: testbed["vms"][e]["address"] for e in ENVS}
        self.ports = {e: free_port(a) for e, a in self.addresses.items()}
        self.keys = {e: f"key-{e}-" + uuid.uuid4().hex for e in ("local", *ENVS)}
        uid = uuid.uuid4().hex[:8]
        self.local_project = f"cve2eledger{uid}"
        self.local_image = f"conveyor-e2e-ledger-{uid}:local"
        self.local_password = f"pw-{uuid.uuid4().hex}"
        self.local_port, self.local_db_port = free_port("127.0.0.1"), free_port("127.0.0.1")
        bed = testbed_env()
        for name in ("BASE_PYTHON_IMAGE", "BASE_POSTGRES_IMAGE"):
            assert bed.get(name, "").startswith("conveyor-base/"), f"scripts/testbed env: {name}"
        self.registry = bed["CONVEYOR_REGISTRY"]
        self.env = {**os.environ, **bed, "CONVEYOR_ACTOR": "e2e-ledger",
                    "COMPOSE_PROJECT_NAME": self.local_project,
                    "LEDGER_APP_PORT": str(self.local_port),
                    "LEDGER_DB_PORT": str(self.local_db_port),
                    "LEDGER_DB_PASSWORD": self.local_password,
                    "LEDGER_SECRET_KEY": self.keys["local"],
                    "LEDGER_DEV_SECRET_KEY": self.keys["dev"],
                    "LEDGER_PROD_SECRET_KEY": self.keys["prod"],
                    "CONVEYOR_CACHE_DIR": str(root / "cache")}
        for name in ("DOCKER_HOST", "DATABASE_URL", "LEDGER_E2E_REHEARSE"):
            self.env.pop(name, None)
        self.vm_envs = {e: vm_docker_env(e) for e in ENVS}
        self.images: list[str] = []  # repository@digest, in the order pushed
        self.built: list[str] = []  # repository:tag, in the order built

    def prepare(self) -> None:
        shutil.copytree(EXAMPLE, self.dir, ignore=shutil.ignore_patterns(
            "__pycache__", ".conveyor"))
        toml = (self.dir / "conveyor.toml").read_text()
        for key, value in (("name", self.app), ("image", self.app)):
            toml, n = re.subn(rf'(?m)^{key} = "ledger"(\s)', rf'{key} = "{value}"\1', toml,
                              count=1)
            assert n == 1, f"the example's app {key} moved"
        toml = toml.replace("[app.build_args]\n", '[app.build_args]\nAPP_VERSION = "v1"\n', 1)
        for e in ENVS:
            extra = (f'state_dir = "{self.root / "state" / e}"\n'
                     f'labels = {{ "{TEST_LABEL}" = "1", "{OWNER_LABEL}" = "{os.getpid()}" }}\n')
            if e == "prod":  # the failing revision is run with and without the rehearsal
                extra += 'rehearse = "${LEDGER_E2E_REHEARSE:-auto}"\n'
            assert f"[environments.{e}]\n" in toml
            toml = toml.replace(f"[environments.{e}]\n", f"[environments.{e}]\n" + extra, 1)
            toml, n = re.subn(rf"(?ms)(\[environments\.{e}\].*?^port = )8082",
                              rf"\g<1>{self.ports[e]}", toml, count=1)
            assert n == 1, f"the example's {e} port moved"
        toml, n = re.subn(r'(?m)^dir = "/var/lib/conveyor/backups/ledger"$',
                          f'dir = "{self.root / "backups"}"', toml)
        assert n == 1, "the example's prod backup dir moved"
        # what matters here: the project's own tool migrates
        assert re.search(r'(?m)^command = \["alembic", "upgrade", "head"\]$', toml)
        (self.dir / "conveyor.toml").write_text(toml)
        compose = self.dir / "docker-compose.yml"
        text = compose.read_text()
        assert "image: ledger:local" in text, "the example's image tag moved"
        compose.write_text(text.replace("image: ledger:local", f"image: {self.local_image}"))
        label_compose_file(compose, {TEST_LABEL: "1", OWNER_LABEL: str(os.getpid()),
                                      "conveyor.test.suite": "example-ledger"})
        (self.dir / ".gitignore").write_text("__pycache__/\n.conveyor/\n")
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.dir)], check=True)
        self.commit("a copy of examples/ledger")

    # the CLI
    def run(self, *args: str, timeout: float = TIMEOUT, env: dict | None = None
            ) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "conveyor.main", *args, "-C", str(self.dir)],
                           capture_output=True, text=True, env={**self.env, **(env or {})},
                           timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        for secret in (*self.keys.values(), self.local_password):
            assert secret not in p.stdout + p.stderr, f"a secret leaked by conveyor {args}"
        return p

    def fails(self, *args: str, **kw) -> subprocess.CompletedProcess:
        p = self.run(*args, **kw)
        assert p.returncode != 0, f"conveyor {' '.join(args)} succeeded:\n{p.stdout[-6000:]}"
        return p

    def build_and_push(self) -> str:
        self.ok("build")
        self.built.append(json.loads(
            (self.dir / ".conveyor" / "images.json").read_text())["built"][-1]["ref"])
        image = self.result(self.ok("push", "--json"))["image"]
        self.images.append(image)
        return image

    def release(self, version: str, revision: str | None = None, source: str = "") -> str:
        """A new revision file (and APP_VERSION), committed, built and pushed."""
        if revision:
            (self.dir / "alembic" / "versions" / revision).write_text(source)
        path = self.dir / "conveyor.toml"
        text, n = re.subn(r'(?m)^APP_VERSION = ".*"$', f'APP_VERSION = "{version}"',
                          path.read_text())
        assert n == 1
        path.write_text(text)
        self.commit(f"release {version}")
        return self.build_and_push()

    def psql(self, env: str, sql: str) -> list[str]:
        """Rows of `sql` in the environment's database (never printed by the assertions)."""
        if env == "local":
            argv = ["exec", self.local_db(), "psql"]
        else:
            argv = ["exec", self.container(env, "db"), "psql"]
        out = self.docker(None if env == "local" else env, *argv, "-XAtq", "-v",
                          "ON_ERROR_STOP=1", "-U", "ledger", "-d", "ledger", "-c", sql).stdout
        return [line for line in out.splitlines() if line]

    def local_db(self) -> str:
        ids = self.docker(None, "ps", "-q", "--filter",
                          f"label=com.docker.compose.project={self.local_project}",
                          "--filter", "label=com.docker.compose.service=db").stdout.split()
        assert len(ids) == 1, ids
        return ids[0]

    def revision(self, env: str) -> list[str]:
        return self.psql(env, "SELECT version_num FROM alembic_version")

    def columns(self, env: str) -> list[str]:
        return self.psql(env, "SELECT column_name FROM information_schema.columns WHERE "
                              "table_name = 'entries' ORDER BY ordinal_position")

    def rows(self, env: str) -> list[str]:
        return self.psql(env, "SELECT id, account, amount_cents, created_at FROM entries "
                              "ORDER BY id")

    def constraints(self, env: str) -> list[str]:
        return self.psql(env, "SELECT conname FROM pg_constraint WHERE conrelid = "
                              "'entries'::regclass AND contype = 'c'")



class State:
    """What the tests learn along the way."""

    dev: ClassVar[dict] = {}
    prod: ClassVar[dict] = {}
    rows: ClassVar[list[str]] = []


@pytest.fixture(scope="module")
def ledger(testbed, tmp_path_factory):
    project = Ledger(tmp_path_factory.mktemp("ledger"), testbed)
    try:
        project.prepare()
        project.cleanup()  # nothing of an earlier run with the same names (there is none)
        yield project
    finally:
        project.cleanup()


def serves(lg: Ledger, env: str, version: str, revision: str) -> None:
    """The app answers on the VM's address, database included (write, read, delete)."""
    status, body = http("GET", lg.url(env) + "/health")
    assert status == 200 and body["database"] == "ok", (status, body)
    assert (body["version"], body["revision"]) == (version, revision), body
    status, entry = http("POST", lg.url(env) + "/entries",
                         {"account": "e2e-" + uuid.uuid4().hex[:6], "amount_cents": 100})
    assert status == 201 and entry["currency"] == "EUR" and entry["receipt"], entry
    assert http("GET", f"{lg.url(env)}/entries/{entry['id']}")[1] == entry
    assert http("DELETE", f"{lg.url(env)}/entries/{entry['id']}")[0] == 204


def deployment_id(out: str) -> str:
    """The id on the CLI's first line ("..., deployment ID")."""
    m = re.search(r"(?m), deployment (\d{8}T\d{6}Z-[0-9a-f]+)$", out)
    assert m, out[:2000]
    return m.group(1)


def step_status(rec: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in rec["steps"]}


# --------------------------------------------------------------------------- 1 local


def test_local_up_runs_alembic_and_the_app_works(ledger):
    p = ledger.ok("up")
    out = p.stdout
    assert "✓ migrations" in out and "ran `alembic upgrade head`" in out, out
    assert "Running upgrade  -> 0001, create the entries table" in out, out
    summary = [ln for ln in out.splitlines() if ln.strip().startswith("migrations ")]
    assert summary and "ran `alembic upgrade head`" in summary[-1], out
    assert "None applied" not in out and "none pending" not in out, out
    assert ledger.revision("local") == ["0001"]
    status, body = http("GET", f"http://127.0.0.1:{ledger.local_port}/health")
    assert status == 200 and body["revision"] == "0001", (status, body)
    status, entry = http("POST", f"http://127.0.0.1:{ledger.local_port}/entries",
                         {"account": "local", "amount_cents": 42})
    assert status == 201 and entry["amount_cents"] == 42, entry
    p = ledger.ok("test")
    assert "4 passed, 0 failed" in p.stdout, p.stdout

    st = json.loads(ledger.ok("status", "--json").stdout)
    tool = st["migrations"]["tool"]
    assert tool["command"] == "alembic upgrade head" and tool["exit_code"] == 0, tool
    assert "0001 (head)" in tool["output"], tool
    human = ledger.ok("status").stdout
    assert "alembic current" in human and "0001 (head)" in human, human
    assert "0 applied" not in human, human

    # a second up runs the tool again (it decides): nothing to do, the data stays
    p = ledger.ok("up")
    assert "ran `alembic upgrade head`" in p.stdout, p.stdout
    assert ledger.psql("local", "SELECT account, amount_cents FROM entries") == ["local|42"]


def test_local_bad_commands_fail_clearly_and_leave_no_container(ledger):
    toml = ledger.dir / "conveyor.toml"
    original = toml.read_text()
    try:
        # not in the image
        toml.write_text(original.replace('command = ["alembic", "upgrade", "head"]',
                                         'command = ["alembic-nope", "upgrade", "head"]', 1))
        p = ledger.fails("up")
        out = p.stdout + p.stderr
        assert "the migration command `alembic-nope upgrade head` failed on local (exit 127: " \
               "the command is not in the image" in out, out
        # exits non-zero: the tool's own refusal is quoted (the last lines of its output)
        toml.write_text(original.replace(
            'command = ["alembic", "upgrade", "head"]',
            'command = ["sh", "-c", "unset LEDGER_SECRET_KEY; exec alembic upgrade head"]', 1))
        p = ledger.fails("up")
        out = p.stdout + p.stderr
        assert "failed on local (exit 3)" in out and "ledger migrations refused" in out, out
        # hangs past migrations.timeout: stopped, its container removed
        toml.write_text(original.replace('command = ["alembic", "upgrade", "head"]',
                                         'command = ["sleep", "300"]', 1)
                        .replace("timeout = 600\n", "timeout = 3\n", 1))
        p = ledger.fails("up", timeout=120)
        out = p.stdout + p.stderr
        assert "`sleep 300` did not finish on local within migrations.timeout (3 s)" in out, out
        left = ledger.docker(None, "ps", "-a", "--format", "{{.Names}}", "--filter",
                             f"label=com.docker.compose.project={ledger.local_project}"
                             ).stdout.split()
        assert not [n for n in left if "migrate" in n], left
        assert not [n for n in ledger.docker(None, "ps", "-a", "--format", "{{.Names}}"
                                             ).stdout.split() if "migrate" in n
                    and ledger.local_project in n], "a migration container was left"
    finally:
        toml.write_text(original)
    # the data is still there, and a good command runs again
    assert ledger.psql("local", "SELECT account, amount_cents FROM entries") == ["local|42"]
    assert "ran `alembic upgrade head`" in ledger.ok("up").stdout
    ledger.ok("down", "--volumes")
    assert http("GET", f"http://127.0.0.1:{ledger.local_port}/health")[0] is None


# --------------------------------------------------------------------------- 2 build, push


def test_build_push_and_the_images_alembic_needs_the_apps_settings(ledger):
    image = ledger.build_and_push()
    repo, digest = image.split("@")
    assert repo == f"{ledger.registry}/{ledger.app}" and re.fullmatch(r"sha256:[0-9a-f]{64}",
                                                                       digest)
    # without the app's environment, the tool refuses (so a run that works got it from conveyor)
    p = ledger.docker(None, "run", "--rm", "--network", "none", "--label", f"{TEST_LABEL}=1",
                      "--label", f"{OWNER_LABEL}={os.getpid()}",
                      "-e", "DATABASE_URL=postgresql://ledger:x@127.0.0.1:1/ledger",
                      ledger.built[-1], "alembic", "current", check=False)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "ledger migrations refused" in p.stderr and "LEDGER_SECRET_KEY" in p.stderr, p.stderr
    assert "LEDGER_CURRENCY" in p.stderr, p.stderr


# --------------------------------------------------------------------------- 3 dev


def test_deploy_dev_runs_alembic_with_the_apps_environment(ledger):
    ledger.ok("setup", "dev")
    p = ledger.ok("deploy", "dev")
    assert "ran `alembic upgrade head`" in p.stdout, p.stdout
    assert "4 passed, 0 failed" in p.stdout, p.stdout
    dev_id = deployment_id(p.stdout)
    rec = json.loads(ledger.ok("history", "dev", dev_id, "--json").stdout)
    assert rec["result"] == "ok" and rec["image"] == ledger.images[-1], rec
    assert all(s == "ok" for s in step_status(rec).values()), rec["steps"]
    State.dev = rec
    assert ledger.revision("dev") == ["0001"]
    assert ledger.columns("dev") == ["id", "account", "amount_cents", "created_at"]
    assert ledger.app_label("dev", "conveyor.image") == ledger.images[-1]
    serves(ledger, "dev", "v1", "0001")
    # no migration container or env file outlived its step
    left = ledger.docker("dev", "ps", "-a", "--format", "{{.Names}}", "--filter",
                         f"label=conveyor.app={ledger.app}").stdout.split()
    assert sorted(n for n in left if not n.endswith("-runner")) == sorted(
        [ledger.container("dev"), ledger.container("dev", "db")]), left
    state = ledger.root / "state" / "dev" / ledger.app / "dev"
    assert not list(state.glob("*.env")) or all(
        not f.name.startswith(("migrate", "plan")) for f in state.glob("*.env"))


# --------------------------------------------------------------------------- 4 prod


def test_deploy_prod_backs_up_and_runs_alembic(ledger):
    ledger.ok("setup", "prod")
    rec = ledger.result(ledger.ok("deploy", "prod", "--json"))["deployment"]
    assert rec["result"] == "ok", rec
    assert rec["image"] == ledger.images[-1] == State.dev["image"]
    steps = step_status(rec)
    assert all(s in ("ok", "skipped") for s in steps.values()), rec["steps"]
    for name in ("plan", "backup", "stop", "migrate", "start", "health", "validate"):
        assert steps.get(name) == "ok", (name, rec["steps"])
    assert rec["details"]["backup"]["id"]
    State.prod = rec
    assert ledger.revision("prod") == ["0001"]
    serves(ledger, "prod", "v1", "0001")


# --------------------------------------------------------------------------- 5 revision 2


def test_a_second_revision_to_dev_and_prod_shows_the_tools_status_in_the_plan(ledger):
    # real rows on prod, among them a refund (a negative amount: revision 3 trips on it)
    for account, amount in (("alice", 1200), ("bob", 560), ("carol", -300)):
        status, entry = http("POST", ledger.url("prod") + "/entries",
                             {"account": account, "amount_cents": amount})
        assert status == 201, entry
    State.rows = ledger.rows("prod")
    assert len(State.rows) == 3

    image = ledger.release("v2", "0002_add_memo.py", REVISION_2)
    rec = ledger.result(ledger.ok("deploy", "dev", "--json"))["deployment"]
    assert rec["result"] == "ok" and rec["image"] == image, rec
    assert ledger.revision("dev") == ["0002"] and "memo" in ledger.columns("dev")

    dry = ledger.ok("deploy", "prod", "--dry-run").stdout
    assert "alembic upgrade head" in dry and "alembic current" in dry, dry

    p = ledger.ok("deploy", "prod")
    out = p.stdout
    # the plan step: the tool's own status in the NEW image (prod has 0001, no longer its
    # head) and the SQL of the pending range only
    assert "$ alembic current" in out and re.search(r"(?m)\| 0001$", out), out
    assert "status: 0001;" in out, out
    assert "ALTER TABLE entries ADD COLUMN memo TEXT DEFAULT '' NOT NULL" in out, out
    assert "CREATE TABLE entries" not in out, "the SQL of the whole history was linted"
    prod_id = deployment_id(out)
    rec = json.loads(ledger.ok("history", "prod", prod_id, "--json").stdout)
    assert rec["result"] == "ok" and rec["image"] == image, rec
    assert "0001" in rec["details"]["tool_status"], rec["details"]
    assert rec["details"]["backup"]["id"] != State.prod["details"]["backup"]["id"]
    State.prod = rec

    assert ledger.revision("prod") == ["0002"] and "memo" in ledger.columns("prod")
    assert ledger.rows("prod") == State.rows
    serves(ledger, "prod", "v2", "0002")
    status, entry = http("POST", ledger.url("prod") + "/entries",
                         {"account": "dave", "amount_cents": 99, "memo": "with a memo"})
    assert status == 201 and entry["memo"] == "with a memo", entry
    State.rows = ledger.rows("prod")

    st = json.loads(ledger.ok("status", "dev", "prod", "--json").stdout)
    for e in ENVS:
        tool = st[e]["migrations"]["tool"]
        assert tool["status_command"] == "alembic current" and tool["exit_code"] == 0, tool
        assert "0002 (head)" in tool["output"], tool
    human = ledger.ok("status", "prod").stdout
    assert "0002 (head)" in human and "0 applied" not in human, human


# --------------------------------------------------------------------------- 6 failing revision


def test_a_revision_failing_on_prods_data_leaves_v2_serving_with_the_data_intact(ledger):
    image = ledger.release("v3", "0003_amounts_positive.py", REVISION_3)
    rec = ledger.result(ledger.ok("deploy", "dev", "--json"))["deployment"]
    assert rec["result"] == "ok" and rec["image"] == image, rec
    assert ledger.revision("dev") == ["0003"]
    serving = State.prod["image"]

    # (a) the rehearsal on a scratch restore of the fresh backup catches it: prod never stops
    p = ledger.fails("deploy", "prod", "--json")
    rec = ledger.result(p)["deployment"]
    assert rec["result"] != "ok", rec
    steps = step_status(rec)
    assert steps.get("rehearse") == "failed", rec["steps"]
    assert steps.get("stop") != "ok", rec["steps"]
    assert "entries_amount_positive" in p.stdout, p.stdout[-4000:]
    after_rehearsal(ledger, serving)

    # (b) without the rehearsal the migrate step fails on prod itself; the previous version is
    # started again and the error names the pre-deploy backup as the way back
    p = ledger.fails("deploy", "prod", env={"LEDGER_E2E_REHEARSE": "never"})
    out = p.stdout + p.stderr
    assert "the migration command `alembic upgrade head` failed on prod (exit 1)" in out, out
    assert "entries_amount_positive" in out and "is violated by some row" in out, out
    dep = deployment_id(out)
    rec = json.loads(ledger.ok("history", "prod", dep, "--json").stdout)
    assert rec["result"] != "ok", rec
    steps = step_status(rec)
    # prod was stopped, the tool failed, the stop was undone: the previous version serves
    assert steps.get("migrate") == "failed" and steps.get("stop") == "undone", rec["steps"]
    assert "the previous version is started again" in out, out
    backup = rec["details"]["backup"]
    assert backup["id"] and backup["id"] in out, out
    assert f"conveyor restore prod {backup['id']}" in out, out
    after_rehearsal(ledger, serving)
    backups = json.loads(ledger.ok("backups", "prod", "--json").stdout)
    assert backup["id"] in {b["id"] for b in backups}


def after_rehearsal(lg: Ledger, serving: str) -> None:
    """v2 serves on prod's address with its rows and schema as before the failed deploy."""
    assert lg.app_label("prod", "conveyor.image") == serving
    assert lg.revision("prod") == ["0002"]
    assert lg.constraints("prod") == []
    assert lg.rows("prod") == State.rows
    serves(lg, "prod", "v2", "0002")


# --------------------------------------------------------------------------- 7 rollback


def test_rollback_with_migrations_runs_the_tools_revert_command(ledger):
    v1 = ledger.images[0]
    p = ledger.ok("rollback", "prod", "--migrations", "--json")
    rec = ledger.result(p)["deployment"]
    assert rec["result"] == "ok" and rec["image"] == v1, rec
    steps = step_status(rec)
    assert steps.get("backup") == "ok" and steps.get("revert") == "ok", rec["steps"]
    assert "alembic downgrade -1" in p.stdout, p.stdout[-4000:]
    assert ledger.app_label("prod", "conveyor.image") == v1
    # the tool downgraded one revision (0002's memo column) in the serving image; rows stay
    assert ledger.revision("prod") == ["0001"]
    assert "memo" not in ledger.columns("prod")
    assert ledger.rows("prod") == State.rows
    serves(ledger, "prod", "v1", "0001")
