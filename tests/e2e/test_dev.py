"""End to end, the dev stage on the test bed: the `conveyor` CLI (as a subprocess) builds a copy
of examples/notes on the main engine, pushes it to the registry, sets the dev VM up and deploys
it there over SSH; then a second deploy with one more migration, a concurrent deploy, a VM whose
host key does not match, a failing migration, and status/logs/history.

Isolation: a copy of the example under tmp_path, in a git repository of its own (its commits
are the image tags), with its own app name (`notes-e2e`: containers notes-e2e-dev-*, its own
network, volume and image repository), a free port on the dev VM's address, a state directory
under tmp_path, a random database password, and labels conveyor.test=1 + the owner PID on every
container, network and volume conveyor creates (`scripts/testbed up` removes leftovers of a
crashed run). Everything is removed from the VM at the end.

The tests of this module run in order and share one environment (each builds on the last).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.e2e.helpers import http
from tests.testbed import (
    OWNER_LABEL,
    TEST_LABEL,
    main_docker_env,
    testbed_env,
    vm_docker_env,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"
APP = "notes-e2e"
ADVISORY_LOCK_KEY = 7165066986957401970  # conveyor.migrations.engine.LOCK_KEY
ORIGINAL = sorted(p.name for p in (EXAMPLE / "migrations").iterdir() if p.is_dir())
TIMEOUT = 600


class Env:
    """The copy of the example, the CLI run against it, and the dev VM's engine."""

    def __init__(self, root: Path, testbed: dict) -> None:
        self.dir = root / "notes"
        self.state = root / "state"
        self.testbed = testbed
        self.address = testbed["vms"]["dev"]["address"]
        with socket.socket() as sock:  # a free port on the dev VM's address
            sock.bind((self.address, 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://{self.address}:{self.port}"
        self.password = "e2e-" + uuid.uuid4().hex[:16]
        self.env = {**os.environ, **testbed_env(), "NOTES_DEV_DB_PASSWORD": self.password,
                    "CONVEYOR_ACTOR": "e2e-test"}
        self.env.pop("DOCKER_HOST", None)
        self.vm_env = vm_docker_env("dev")
        self.images: list[str] = []  # repository@digest, in the order pushed
        self.deployments: dict[str, str] = {}  # label -> deployment id

    # the CLI
    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "conveyor.main", *args, "-C", str(self.dir)]

    def run(self, *args: str, env: dict | None = None, timeout: float = TIMEOUT
            ) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True,
                              env={**self.env, **(env or {})}, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        p = self.run(*args, **kw)
        assert p.returncode == 0, (f"conveyor {' '.join(args)} exited {p.returncode}:\n"
                                   f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        return p

    def result(self, p: subprocess.CompletedProcess) -> dict:
        """The final `result` event of a --json run."""
        return json.loads(p.stdout.strip().splitlines()[-1])

    # the copy's git repository
    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.dir), "-c", "user.name=e2e",
                               "-c", "user.email=e2e@localhost", *args], check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip()

    def add_migration(self, name: str, up: str, down: str) -> str:
        d = self.dir / "migrations" / name
        d.mkdir()
        (d / "up.sql").write_text(up)
        (d / "down.sql").write_text(down)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"migration {name}")
        return name

    def build_and_push(self) -> str:
        self.ok("build")
        image = self.result(self.ok("push", "--json"))["image"]
        self.images.append(image)
        return image

    # the dev VM (its own engine, reached for the assertions through the test bed)
    def vm(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(["docker", *argv], capture_output=True, text=True, env=self.vm_env,
                           timeout=120, check=False)
        if check:
            assert p.returncode == 0, f"docker {' '.join(argv)} on the dev VM: {p.stderr}"
        return p

    def psql(self, sql: str) -> list[str]:
        out = self.vm("exec", f"{APP}-dev-db", "psql", "-XAtq", "-U", "notes", "-d", "notes",
                      "-c", sql).stdout
        return [line for line in out.splitlines() if line]

    def app_label(self, label: str) -> str:
        return self.vm("inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}',
                       f"{APP}-dev-app").stdout.strip()

    def cleanup_vm(self) -> None:
        names = [f"{APP}-dev-{s}" for s in ("app", "app-previous", "app-failed", "db")]
        self.vm("rm", "--force", "--volumes", *names, check=False)
        for c in self.vm("ps", "-aq", "--filter", f"label=conveyor.app={APP}",
                         check=False).stdout.split():
            self.vm("rm", "--force", c, check=False)
        self.vm("network", "rm", f"{APP}-dev", check=False)
        self.vm("volume", "rm", f"{APP}-dev-pgdata", check=False)


def serves(env: Env) -> None:
    """The app answers on the dev VM's address, database included (write, read, delete)."""
    status, body = http("GET", env.url + "/health")
    assert status == 200 and body["database"] == "ok", body
    status, note = http("POST", env.url + "/notes", {"title": "e2e " + uuid.uuid4().hex})
    assert status == 201, note
    assert http("GET", f"{env.url}/notes/{note['id']}")[0] == 200
    assert http("DELETE", f"{env.url}/notes/{note['id']}")[0] == 204


class Lines:
    """A running CLI process whose stdout lines are read by a thread (bounded waits, no
    sleeps)."""

    def __init__(self, env: Env, *args: str, extra_env: dict | None = None) -> None:
        self.proc = subprocess.Popen(env.argv(*args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**env.env, **(extra_env or {})},
                                     stdin=subprocess.DEVNULL)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, predicate, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"not seen within {timeout}s; output so far:\n"
                                     + "\n".join(self.seen[-30:])) from None
            if line is None:
                raise AssertionError("the process ended first:\n" + "\n".join(self.seen[-30:])
                                     + "\n" + (self.proc.stderr.read() if self.proc.stderr
                                               else ""))
            self.seen.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, list[str], str]:
        rc = self.proc.wait(timeout=timeout)
        while True:
            line = self.lines.get(timeout=30)
            if line is None:
                break
            self.seen.append(line)
        return rc, self.seen, self.proc.stderr.read() if self.proc.stderr else ""


def results_of(dev: Env) -> dict[str, str]:
    return {e["id"]: e["result"] for e in json.loads(dev.ok("history", "dev", "--json").stdout)}


def events(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


@pytest.fixture(scope="module")
def dev(testbed, tmp_path_factory):
    root = tmp_path_factory.mktemp("dev-e2e")
    env = Env(root, testbed)
    shutil.copytree(EXAMPLE, env.dir, ignore=shutil.ignore_patterns("__pycache__",
                                                                    ".pytest_cache"))
    toml = (env.dir / "conveyor.toml").read_text()
    toml = re.sub(r'(?m)^name = "notes"$', f'name = "{APP}"', toml, count=1)
    toml = re.sub(r'(?m)^image = "notes"', f'image = "{APP}"', toml, count=1)
    extra = (f'state_dir = "{env.state}"\n'
             f'labels = {{ "{TEST_LABEL}" = "1", "{OWNER_LABEL}" = "{os.getpid()}" }}\n')
    toml = toml.replace("[environments.dev]\n", "[environments.dev]\n" + extra, 1)
    toml, n = re.subn(r"(?ms)(\[environments\.dev\].*?^port = )8080", rf"\g<1>{env.port}", toml,
                      count=1)
    assert n == 1, "the example's dev port moved"
    (env.dir / "conveyor.toml").write_text(toml)
    (env.dir / ".gitignore").write_text("__pycache__/\n")  # the tests run in this tree
    subprocess.run(["git", "init", "-q", "-b", "main", str(env.dir)], check=True)
    env.git("add", "-A")
    env.git("commit", "-q", "-m", "a copy of examples/notes")
    env.cleanup_vm()
    yield env
    env.cleanup_vm()
    main = main_docker_env()
    tags = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                           f"{testbed_env()['CONVEYOR_REGISTRY']}/{APP}"], capture_output=True,
                          text=True, env=main, timeout=60, check=False).stdout.split()
    if tags:
        subprocess.run(["docker", "rmi", *tags], capture_output=True, env=main, timeout=120, check=False)


# --------------------------------------------------------------------------- the first deploy


def test_build_push_setup_deploy(dev, tmp_path):
    head = dev.git("rev-parse", "HEAD")
    built = dev.result(dev.ok("build", "--json"))
    assert built["image"].endswith(f"/{APP}:{head[:12]}")
    image = dev.result(dev.ok("push", "--json"))["image"]
    dev.images.append(image)
    _repo, digest = image.split("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    recorded = json.loads((dev.dir / ".conveyor" / "images.json").read_text())["pushed"][-1]
    assert recorded["digest"] == digest and recorded["commit"] == head
    assert "nothing is done" in dev.ok("setup", "dev", "--dry-run").stdout
    dev.ok("setup", "dev")
    dev.ok("setup", "dev")  # idempotent: the database container is never recreated

    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    p = dev.ok("deploy", "dev", "--junit", str(junit), "--summary", str(summary))
    dev.deployments["first"] = re.search(r"deployment (\S+)", p.stdout).group(1)

    # the VM's own engine pulled the image by digest from the registry ...
    digests = json.loads(dev.vm("image", "inspect", "--format", "{{json .RepoDigests}}",
                                image).stdout)
    assert image in digests
    assert dev.app_label("conveyor.image") == image
    assert dev.app_label("org.opencontainers.image.revision") == head
    assert dev.vm("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}",
                  f"{APP}-dev-app").stdout.strip() == "unless-stopped"
    assert dev.vm("port", f"{APP}-dev-app").stdout.strip() == f"8000/tcp -> {dev.address}:{dev.port}"
    # ... and the main engine runs nothing of it
    main_ps = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label=conveyor.app={APP}"],
                             capture_output=True, text=True, env=main_docker_env(), timeout=60, check=False)
    assert main_ps.returncode == 0 and main_ps.stdout.strip() == ""

    # the app answers on the dev VM's address, the dev database migrated
    serves(dev)
    versions = dev.psql("SELECT version FROM __diesel_schema_migrations ORDER BY 1")
    assert versions == [n.split("_")[0].replace("-", "") for n in ORIGINAL]

    # the example's test suite ran against it: the JUnit file lists its cases
    suite = ET.parse(junit).getroot()
    cases = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert len(cases) >= 20 and ("tests.test_api", "test_health_is_ok") in cases
    assert not any(c.find("failure") is not None for c in suite.iter("testcase"))
    md = summary.read_text()
    assert md.startswith("## ✅ conveyor deploy notes-e2e → dev: ok") and digest in md

    # the env file on the host is 0600; no secret in the record
    env_file = dev.state / APP / "dev" / "app.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    record = dev.state / APP / "dev" / "deployments" / f"{dev.deployments['first']}.json"
    text = record.read_text()
    assert dev.password not in text
    assert json.loads(text)["migrations_applied"] == ORIGINAL


def test_second_deploy_applies_only_the_new_migration(dev):
    name = dev.add_migration("2026-11-04-000001_add_notes_color",
                             "ALTER TABLE notes ADD COLUMN color text;\n",
                             "ALTER TABLE notes DROP COLUMN color;\n")
    image = dev.build_and_push()
    p = dev.ok("deploy", "dev", "--no-tests", "--json")
    rec = dev.result(p)["deployment"]
    dev.deployments["second"] = rec["id"]
    assert rec["result"] == "ok" and rec["image"] == image
    assert rec["migrations_applied"] == [name]
    assert rec["previous_image"] == dev.images[0]
    assert rec["ssh_connections"] == 1
    assert dev.psql("SELECT count(*) FROM __diesel_schema_migrations") == [str(len(ORIGINAL) + 1)]
    assert dev.psql("SELECT column_name FROM information_schema.columns WHERE table_name = "
                    "'notes' AND column_name = 'color'") == ["color"]
    serves(dev)

    # the same image again: nothing to migrate, and no migration container started for it
    rec = dev.result(dev.ok("deploy", "dev", "--no-tests", "--json"))["deployment"]
    migrate = next(s for s in rec["steps"] if s["name"] == "migrate")
    assert rec["migrations_applied"] == [] and "nothing to migrate" in migrate["notes"][0]


# --------------------------------------------------------------------------- the lock


def test_a_concurrent_deploy_is_refused_naming_the_lock_holder(dev):
    """Deployment A is held inside its migrate step (the test holds the migration engine's
    advisory lock on the dev database); meanwhile B is refused naming A's holder, and C waits
    (--wait) and goes through once A is done."""
    dev.add_migration("2026-11-05-000001_add_notes_archived",
                      "ALTER TABLE notes ADD COLUMN archived boolean NOT NULL DEFAULT false;\n",
                      "ALTER TABLE notes DROP COLUMN archived;\n")
    image = dev.build_and_push()
    holder = subprocess.Popen(
        ["docker", "exec", "-i", f"{APP}-dev-db", "psql", "-XAtq", "-U", "notes", "-d", "notes"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dev.vm_env)
    try:
        assert holder.stdin and holder.stdout
        holder.stdin.write(f"SELECT pg_advisory_lock({ADVISORY_LOCK_KEY});\n\\echo held\n")
        holder.stdin.flush()
        for line in holder.stdout:  # pg_advisory_lock's (empty) row, then our echo
            if line.strip() == "held":
                break
        else:
            raise AssertionError("psql ended before taking the advisory lock")

        a = Lines(dev, "deploy", "dev", "--no-tests", "--json",
                  extra_env={"CONVEYOR_ACTOR": "alice-e2e"})
        a.wait_for(lambda ln: '"step_started"' in ln and '"migrate"' in ln)

        b = dev.run("deploy", "dev", "--no-tests", env={"CONVEYOR_ACTOR": "bob-e2e"})
        assert b.returncode == 18, b.stdout + b.stderr  # LockHeld
        assert "dev is locked by alice-e2e for `deploy dev " + image in b.stderr
        assert "--wait" in b.stderr  # the hint
        status = dev.ok("lock", "status", "dev").stdout
        assert "locked by alice-e2e" in status

        c = Lines(dev, "deploy", "dev", "--no-tests", "--wait", "--wait-timeout", "300",
                  "--json", extra_env={"CONVEYOR_ACTOR": "carol-e2e"})
        c.wait_for(lambda ln: "waiting for the lock held by alice-e2e" in ln)
    finally:
        if holder.stdin:
            holder.stdin.close()  # the session ends: the advisory lock is released
        holder.wait(timeout=60)

    rc, lines, err = a.finish()
    assert rc == 0, "\n".join(lines[-20:]) + err
    rec_a = events(lines)[-1]["deployment"]
    assert rec_a["who"] == "alice-e2e" and rec_a["migrations_applied"] == [
        "2026-11-05-000001_add_notes_archived"]
    rc, lines, err = c.finish()
    assert rc == 0, "\n".join(lines[-20:]) + err
    rec_c = events(lines)[-1]["deployment"]
    assert rec_c["who"] == "carol-e2e" and rec_c["migrations_applied"] == []
    dev.deployments["alice"], dev.deployments["carol"] = rec_a["id"], rec_c["id"]
    assert "is not locked" in dev.ok("lock", "status", "dev").stdout

    # a lock taken by hand (maintenance) refuses deploys too, until released
    dev.ok("lock", "acquire", "dev", "-m", "db maintenance", env={"CONVEYOR_ACTOR": "dave-e2e"})
    p = dev.run("deploy", "dev", "--no-tests")
    assert p.returncode == 18 and "locked by dave-e2e for `db maintenance`" in p.stderr
    assert "released the lock of dev (held by dave-e2e" in dev.ok("lock", "release", "dev").stdout
    serves(dev)


# --------------------------------------------------------------------------- host keys


def _throwaway_key_line(tmp_path: Path, host: str) -> str:
    key = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, b64 = key.with_suffix(".pub").read_text().split()[:2]
    return f"{host} {kind} {b64}\n"


def test_a_vm_whose_host_key_does_not_match_is_refused(dev, tmp_path):
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(_throwaway_key_line(tmp_path, dev.address))
    before = sorted(os.listdir(dev.state / APP / "dev" / "deployments"))
    p = dev.run("deploy", "dev", "--no-tests", env={"CONVEYOR_KNOWN_HOSTS": str(wrong)})
    assert p.returncode == 21, p.stdout + p.stderr  # HostKeyError
    assert f"refusing to connect to root@{dev.address}:22: its host key does NOT match" in p.stderr
    assert "conveyor hosts trust" in p.stderr
    assert sorted(os.listdir(dev.state / APP / "dev" / "deployments")) == before
    assert "is not locked" in dev.ok("lock", "status", "dev").stdout

    unknown = tmp_path / "known_hosts_empty"
    unknown.write_text("")
    p = dev.run("status", "dev", env={"CONVEYOR_KNOWN_HOSTS": str(unknown)})
    assert "its host key is not in" in p.stdout + p.stderr

    # trusting deliberately: the fingerprint shown is the VM's real key; then it connects
    p = dev.ok("hosts", "trust", "dev", "--yes", env={"CONVEYOR_KNOWN_HOSTS": str(wrong)})
    real = subprocess.run(["ssh-keygen", "-lf", dev.testbed["vms"]["dev"]["host_key"]],
                          capture_output=True, text=True, check=True).stdout.split()[1]
    assert real in p.stdout and "[NEW]" in p.stdout and "changed" in p.stdout
    assert "host key verified" in dev.ok("hosts", "check", "dev",
                                         env={"CONVEYOR_KNOWN_HOSTS": str(wrong)}).stdout
    p = dev.run("hosts", "trust", "dev", env={"CONVEYOR_KNOWN_HOSTS": str(unknown)})
    assert p.returncode != 0 and "without confirmation" in p.stderr


# --------------------------------------------------------------------------- a failing app


def test_a_failing_health_check_puts_the_previous_app_back(dev):
    """An image whose app exits at start: the deploy fails at the health check (early: the
    container restarts), the previous container serves again, the failed one is kept."""
    serving_image = dev.app_label("conveyor.image")
    dockerfile = dev.dir / "Dockerfile"
    text = dockerfile.read_text()
    cmd = re.search(r"(?m)^CMD \[.*\]$", text).group(0)
    dockerfile.write_text(text.replace(cmd, 'CMD ["python", "-c", "raise SystemExit(3)"]'))
    dev.git("commit", "-q", "-am", "an app that does not start")
    try:
        dev.build_and_push()
        p = dev.run("deploy", "dev", "--no-tests")
    finally:
        dev.git("revert", "--no-edit", "HEAD")
    assert p.returncode == 9, p.stdout + p.stderr  # HealthCheckFailed
    dev.deployments["unhealthy"] = re.search(r"deployment (\S+)", p.stdout).group(1)
    assert "did not answer 200" in p.stderr and "restarted" in p.stderr
    assert "undo replace: undone" in p.stdout
    assert dev.app_label("conveyor.image") == serving_image
    assert dev.vm("inspect", "--format", "{{.State.Status}}",
                  f"{APP}-dev-app-failed").stdout.strip() == "exited"
    serves(dev)  # the undo waited for the previous app to answer again


# --------------------------------------------------------------------------- a broken migration


def test_a_failing_migration_stops_the_deploy_before_the_app_is_touched(dev):
    serving_image = dev.app_label("conveyor.image")
    serving_id = dev.vm("inspect", "--format", "{{.Id}}", f"{APP}-dev-app").stdout.strip()
    name = dev.add_migration("2026-11-06-000001_broken",
                             "ALTER TABLE notes ADD COLUMN broken no_such_type;\n",
                             "ALTER TABLE notes DROP COLUMN broken;\n")
    dev.build_and_push()
    p = dev.run("deploy", "dev", "--no-tests")
    assert p.returncode == 8, p.stdout + p.stderr  # MigrationStepFailed
    assert "migration failed on dev" in p.stderr and name in p.stdout + p.stderr
    assert "previous version keeps serving" in p.stderr
    dev.deployments["broken"] = re.search(r"deployment (\S+)", p.stdout).group(1)
    # the old app was not touched and still serves, over HTTP
    assert dev.vm("inspect", "--format", "{{.Id}}", f"{APP}-dev-app").stdout.strip() == serving_id
    assert dev.app_label("conveyor.image") == serving_image
    serves(dev)
    assert dev.psql("SELECT count(*) FROM __diesel_schema_migrations WHERE version = "
                    "'20261106000001'") == ["0"]
    assert "is not locked" in dev.ok("lock", "status", "dev").stdout


# --------------------------------------------------------------------------- status, logs, history


def test_status_logs_and_history_show_what_happened(dev):
    st = json.loads(dev.ok("status", "dev", "--json").stdout)["dev"]
    serving = dev.images[-3]  # neither the unhealthy nor the broken image kept running
    assert st["app"]["state"] == "running" and st["app"]["image"] == serving
    assert st["app"]["digest"] == serving.split("@")[1]
    assert st["app"]["deployment"] == dev.deployments["carol"]
    assert st["app"]["revision"] and st["health"]["ok"] is True
    assert st["url"] == dev.url
    assert st["db"]["state"] == "running"
    m = st["migrations"]
    assert m["ok"] and len(m["applied"]) == len(ORIGINAL) + 2 and m["pending"] == []
    assert m["drift"] == []
    assert st["last_deployment"]["id"] == dev.deployments["broken"]
    assert results_of(dev)[dev.deployments["unhealthy"]] == "failed"
    assert st["last_deployment"]["result"] == "failed"
    human = dev.ok("status", "dev").stdout
    assert "running" in human and "pending: none" in human

    hist = json.loads(dev.ok("history", "dev", "--json").stdout)
    results = {e["id"]: e["result"] for e in hist}
    for key in ("first", "second", "alice", "carol"):
        assert results[dev.deployments[key]] == "ok"
    assert results[dev.deployments["broken"]] == "failed"
    assert [e["id"] for e in hist] == sorted(e["id"] for e in hist)
    table = dev.ok("history", "dev").stdout
    assert dev.deployments["broken"] in table and "failed" in table

    one = dev.ok("history", "dev", dev.deployments["broken"]).stdout
    assert "migrate" in one and "no_such_type" in one
    rec = json.loads(dev.ok("history", "dev", dev.deployments["first"], "--json").stdout)
    assert [s["name"] for s in rec["steps"]] == ["lock", "pull", "migrate", "replace",
                                                 "health", "test"]
    assert all(s["status"] == "ok" and s["duration"] >= 0 for s in rec["steps"])

    assert "GET /health" in dev.ok("logs", "dev", "app", "--tail", "50", "--all").stdout
    assert "database system is ready" in dev.ok("logs", "dev", "db").stdout
    mig = dev.ok("logs", "dev", "migrate").stdout
    assert dev.deployments["broken"] in mig and "no_such_type" in mig

    # --dry-run prints the plan and changes nothing
    p = dev.ok("deploy", "dev", "--dry-run")
    assert "dry run: nothing is done" in p.stdout and "docker run --detach" in p.stdout
    assert dev.password not in p.stdout
    assert json.loads(dev.ok("history", "dev", "--json").stdout) == hist
