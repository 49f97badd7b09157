"""Fault injection on the real test bed (issue 11, item 9): a `conveyor deploy ENV --json` is
started as a real process, watched through its events, and hurt at a chosen stage by the test
itself (a signal to its PID, its own ssh processes killed, the VM's dockerd restarted, the env's
PostgreSQL container restarted, the registry stopped). Then, with bounded polls only, every test
asserts the same outcome (`Bed.check_after_fault`):

  * the old or the new version answers on the VM's address (GET /health, GET /notes), and the
    one that fits the deployment's record (ok: the new one; failed/interrupted: the old one);
  * the lock is free: no running `<app>-<env>-runner` container, `conveyor lock status` says so;
  * the deployment has a record in `conveyor history ENV --json` (ok / failed / interrupted);
  * `__diesel_schema_migrations` agrees with the schema (each fault migration adds a column:
    applied <=> the column exists);
  * the notes written before the fault are all there;
  * a plain rerun of `conveyor deploy ENV` converges (exit 0, the new version serving).

The helpers live here (this directory owns no other module). One app copy per test module
(`Bed`, built on tests/e2e/helpers.py's Project); each fault deploys a new version of it.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import ORIGINAL_MIGRATIONS, Project, http, version_of
from tests.testbed import testbed_up

REPO = Path(__file__).resolve().parents[2]
ORIGINAL = [version_of(n) for n in ORIGINAL_MIGRATIONS]
RUNNER_DONE_WITHIN = 300.0  # a runner left alone ends (finishes or undoes) within this
SLOW_MIGRATION_SECONDS = 5
SLOW_TESTS_SECONDS = 15
SLOW_START_SECONDS = 8

SLOW_TEST = '''\
"""Fault-suite hook: sleeps while the fault suite asks for it (FAULTS_SLOW_TESTS_MARK)."""
import os
import pathlib
import time


def test_zz_slow_when_asked():
    mark = os.environ.get("FAULTS_SLOW_TESTS_MARK")
    if mark:
        pathlib.Path(mark).write_text("running")
        time.sleep(float(os.environ.get("FAULTS_SLOW_TESTS", "15")))
'''


@pytest.fixture(scope="session")
def testbed() -> dict:
    return testbed_up()


def bed_script():
    """scripts/testbed as a module: its own functions start and stop its services."""
    path = str(REPO / "scripts" / "testbed")
    loader = importlib.machinery.SourceFileLoader("conveyor_testbed_script", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = mod  # its dataclasses look their module up
    loader.exec_module(mod)
    return mod


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """predicate() until truthy (returned), bounded; AssertionError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {last!r})")
        time.sleep(interval)


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class Run:
    """`conveyor ... --json` running; its stdout events read by a thread (bounded waits)."""

    def __init__(self, bed: Bed, *args: str, extra_env: dict | None = None) -> None:
        self.proc = subprocess.Popen(bed.argv(*args, "--json"), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**bed.env, **(extra_env or {})},
                                     stdin=subprocess.DEVNULL)
        self.events: list[dict] = []
        self.lines: queue.Queue[dict | None] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._err, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                e = {"event": "text", "line": line.rstrip()}
            self.events.append(e)
            self.lines.put(e)
        self.lines.put(None)

    def _err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def tail(self) -> str:
        return "\n".join(json.dumps(e)[:300] for e in self.events[-25:]) + "\n" + self.stderr[-2000:]

    def wait_event(self, predicate: Callable[[dict], bool], timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                e = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"event not seen within {timeout}s:\n{self.tail()}") from None
            if e is None:
                self.proc.wait(30)
                raise AssertionError(f"conveyor ended (exit {self.proc.returncode}) before the "
                                     f"event:\n{self.tail()}")
            if predicate(e):
                return e

    def wait_step(self, step: str, kind: str = "step_started", timeout: float = 240) -> dict:
        return self.wait_event(lambda e: e.get("event") == kind and e.get("step") == step,
                               timeout)

    def kill(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"conveyor did not end within {timeout}s:\n{self.tail()}") from None

    def ssh_processes(self) -> list[int]:
        """This run's ssh processes: its ssh children, and the ControlMaster (daemonized, so not
        a child) found by the private ControlPath its children name."""
        kids = [p for p in children(self.proc.pid) if cmdline(p)[:1] == ["ssh"]]
        paths = {a.split("=", 1)[1] for p in kids for a in cmdline(p)
                 if a.startswith("ControlPath=")}
        masters = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) not in kids:
                argv = cmdline(int(d))
                if (argv[:1] == ["ssh"] and "ControlMaster=yes" in argv
                        and any(f"ControlPath={p}" in argv for p in paths)):
                    masters.append(int(d))
        return kids + masters


def fault_migration_name(n: int) -> str:
    return f"2027-01-01-{n:06d}_fault_{n}"


class Bed(Project):
    """One app copy on the test bed, with the knobs the faults need: a slow migration, slow
    tests (FAULTS_SLOW_TESTS_MARK), a slow start (FAULTS_SLOW_START)."""

    counter = 1
    notes: dict[str, list[tuple[int, str]]]
    fault_columns: dict[str, str]  # diesel version -> the column its migration adds

    @classmethod
    def make(cls, root: Path, testbed: dict, app: str, envs: tuple[str, ...]) -> Bed:
        b = cls.create(root, testbed, app=app, envs=envs)
        b.notes = {e: [] for e in envs}
        b.fault_columns = {}
        (b.dir / "tests" / "test_zz_faults_slow.py").write_text(SLOW_TEST)
        app_py = b.dir / "app" / "notes" / "app.py"
        src = app_py.read_text()
        anchor = "    app.state.db = db\n"
        assert anchor in src, "the example's lifespan moved"
        app_py.write_text(src.replace(anchor, anchor + (
            "    await __import__('asyncio').sleep(float(os.environ.get('NOTES_SLOW_START') "
            "or 0))  # fault suite: a slow start\n"), 1))
        toml = b.dir / "conveyor.toml"
        text = toml.read_text()
        assert "[app.env]\n" in text
        toml.write_text(text.replace("[app.env]\n", '[app.env]\nNOTES_SLOW_START = '
                                     '"${FAULTS_SLOW_START:-0}"\n', 1))
        b.commit("fault suite: slow tests and slow start on demand")
        return b

    def argv(self, *args: str) -> list[str]:
        return super().argv(*args)

    # versions
    def new_version(self, *, migration: bool = False, dev: bool = False) -> str:
        """Commit, build, push a new version (with a slow migration that adds a column); with
        dev=True also deploy it to dev, so that prod can take it."""
        Bed.counter += 1
        n = Bed.counter
        version = f"v{n}"
        self.set_version(version)
        if migration:
            name = fault_migration_name(n)
            col = f"fault_{n}"
            self.add_migration(name, f"SELECT pg_sleep({SLOW_MIGRATION_SECONDS});\n"
                                     f"ALTER TABLE notes ADD COLUMN {col} text;\n",
                               f"ALTER TABLE notes DROP COLUMN {col};\n")
            self.fault_columns[version_of(name)] = col
        self.commit(f"fault suite: {version}")
        self.build_and_push()
        if dev:
            self.ok("deploy", "dev")
        return version

    # the app
    def health(self, env: str) -> tuple[int | None, Any]:
        return http("GET", self.url(env) + "/health", timeout=5)

    def serving(self, env: str) -> str | None:
        status, body = self.health(env)
        if status == 200 and isinstance(body, dict) and body.get("database") == "ok":
            return body["version"]
        return None

    def write_note(self, env: str) -> None:
        title = f"fault-row {len(self.notes[env])} {time.time():.3f}"
        status, body = http("POST", self.url(env) + "/notes", {"title": title, "body": "keep"})
        assert status == 201, (status, body)
        self.notes[env].append((body["id"], title))

    # the host
    def runner(self, env: str) -> str:
        return f"{self.app}-{env}-runner"

    def runner_running(self, env: str) -> bool:
        c = self.vms[env].inspect(self.runner(env))
        return bool(c and c["State"]["Running"])

    def wait_runner_done(self, env: str, timeout: float = RUNNER_DONE_WITHIN) -> None:
        poll(lambda: not self.runner_running(env), timeout, f"the {env} runner ending",
             interval=0.5)

    def lock_free(self, env: str) -> str:
        return self.ok("lock", "status", env).stdout

    def history_ids(self, env: str) -> list[str]:
        return [e["id"] for e in self.history(env)]

    def pg_sleeping(self, env: str) -> bool:
        rows = self.psql(env, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                              "'%pg_sleep%' AND pid <> pg_backend_pid()")
        return int(rows[0]) > 0

    # the checks
    def schema_consistent(self, env: str) -> None:
        applied = self.migrations(env)
        cols = set(self.columns(env))
        known = set(ORIGINAL) | set(self.fault_columns)
        assert set(applied) <= known, f"unknown applied versions: {set(applied) - known}"
        assert set(ORIGINAL) <= set(applied), applied
        for v, col in self.fault_columns.items():
            assert (v in applied) == (col in cols), (
                f"{env}: migration {v} applied={v in applied} but column {col} "
                f"exists={col in cols} (applied {applied}, columns {sorted(cols)})")

    def rows_intact(self, env: str) -> None:
        want = self.notes[env]
        if not want:
            return
        ids = ",".join(str(i) for i, _ in want)
        got = dict(r.split("|", 1) for r in self.psql(
            env, f"SELECT id, title FROM notes WHERE id IN ({ids})"))
        assert {int(k): v for k, v in got.items()} == dict(want), (got, want)
        i, title = want[-1]
        status, body = http("GET", f"{self.url(env)}/notes/{i}")
        assert status == 200 and body["title"] == title, (status, body)
        status, body = http("GET", f"{self.url(env)}/notes?limit=100")
        assert status == 200 and isinstance(body.get("notes"), list), (status, body)

    def check_after_fault(self, env: str, before: list[str], old: str, new: str, *,
                          expect: str | None = None, results=("ok", "failed", "interrupted"),
                          label: str = "") -> dict:
        """Everything the suite asserts after a fault; returns an observation for the report.
        expect: "old" or "new" when the fault's expected outcome is known."""
        obs: dict[str, Any] = {"label": label}
        self.wait_runner_done(env)
        lock = self.lock_free(env)
        obs["lock"] = lock.strip()
        assert "is not locked" in lock, lock
        hist = self.history(env)
        new_recs = [e for e in hist if e["id"] not in before]
        assert len(new_recs) == 1, f"expected one new record, got {new_recs}"
        rec = new_recs[0]
        obs["record"] = rec["result"]
        obs["error"] = (rec.get("error") or "")[:200]
        served = poll(lambda: self.serving(env), 60, f"{env} answering /health")
        obs["served"] = served
        assert rec["result"] in results, (rec["result"], rec.get("error"), rec.get("steps"))
        assert served in (old, new), (served, old, new)
        if rec["result"] == "ok":
            assert served == new, (served, rec)
        else:
            assert served == old, (served, rec)
        if expect is not None:
            assert served == (old if expect == "old" else new), (served, expect, rec)
        self.schema_consistent(env)
        self.rows_intact(env)
        # a plain rerun converges
        self.ok("deploy", env)
        assert self.serving(env) == new
        assert not self.runner_running(env)
        assert "is not locked" in self.lock_free(env)
        assert self.history(env)[-1]["result"] == "ok"
        self.schema_consistent(env)
        self.rows_intact(env)
        obs["rerun"] = "ok"
        return obs


OBSERVATIONS: list[dict] = []


def record(obs: dict) -> None:
    OBSERVATIONS.append(obs)
    with contextlib.suppress(OSError), open(
            os.environ.get("FAULTS_REPORT", "/tmp/faults-report.jsonl"), "a") as f:
        f.write(json.dumps(obs) + "\n")


SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
