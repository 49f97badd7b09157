"""End to end, the rehearsal of prod's pending migrations on the test bed: a copy of examples/notes
passes dev (no rows there, every migration passes) and is promoted to the prod VM, whose rows
break some migrations. A prober sends GET /health to prod's address every 20 ms (bounded, only
127.x) while each refused deploy runs: prod must not miss a single request.

The story, in order (the tests share one environment):
  1. v1 promoted (its rehearsal runs on an empty restore); notes written to prod, two sharing a
     title, two with an empty body;
  2. v2: a unique index over the duplicated titles: refused by the rehearsal, 0 failed probes,
     prod's rows and schema intact, no scratch database left; the duplicate is removed;
  3. v3: a NOT NULL over nulls (a backfill that leaves the empty bodies NULL): refused the same
     way; the empty notes are removed;
  4. v3 again: --max-downtime 0.001 is refused before anything stops; then the rehearsal passes
     and the deploy goes on (migrations applied, v3 serves, the prediction is in the record);
  5. v4: a slow migration; the runner container is SIGKILLed during the rehearsal: the restart
     policy brings it back, its recovery drops the scratch database, prod is untouched.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from http.client import HTTPConnection
from typing import ClassVar, Self

import pytest

from tests.e2e.helpers import ORIGINAL_MIGRATIONS, Project, http, version_of
from tests.testbed import ssh_argv

pytestmark = pytest.mark.e2e

V1_MIGRATIONS = [version_of(n) for n in ORIGINAL_MIGRATIONS]
UNIQUE = "2026-12-10-000001_notes_title_unique"
SUMMARY = "2026-12-11-000001_notes_summary_not_null"
SLOW = "2026-12-12-000001_slow_backfill"


class Prober:
    """GET /health on prod every 20 ms, a new connection each time (1 s timeout), at most
    `limit` seconds; only 127.x addresses."""

    def __init__(self, address: str, port: int, limit: float = 240.0) -> None:
        assert address.startswith("127."), address
        self.address, self.port, self.limit = address, port, limit
        self.ok = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                c = HTTPConnection(self.address, self.port, timeout=1.0)
                c.request("GET", "/health")
                status = c.getresponse().status
                c.close()
                if status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
            except OSError:
                self.failed += 1
            time.sleep(0.020)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class State:
    images: ClassVar[dict[str, str]] = {}
    app_id: str = ""


@pytest.fixture(scope="module")
def p(testbed, tmp_path_factory):
    project = Project.create(tmp_path_factory.mktemp("rehearsal-e2e"), testbed,
                             app=f"notes-reh-{secrets.token_hex(2)}", health_timeout=8)
    try:
        State.images["v1"] = project.build_and_push()
        project.ok("setup", "dev")
        project.ok("deploy", "dev")
        project.ok("setup", "prod")
        yield project
    finally:
        project.cleanup()


def prober(p: Project) -> Prober:
    return Prober(p.addresses["prod"], p.ports["prod"])


def serving(p: Project) -> str:
    status, body = http("GET", p.url("prod") + "/health")
    assert status == 200, (status, body)
    return body["version"]


def app_id(p: Project) -> str:
    c = p.vms["prod"].inspect(p.container("prod"))
    assert c is not None and c["State"]["Running"]
    return c["Id"]


def scratch_databases(p: Project) -> list[str]:
    return p.psql("prod", "SELECT datname FROM pg_database WHERE datname LIKE '%rehearse%'")


def ship(p: Project, version: str, message: str) -> None:
    p.set_version(version)
    p.commit(message)
    State.images[version] = p.build_and_push()
    p.ok("deploy", "dev")


def rows(p: Project) -> list[str]:
    return p.psql("prod", "SELECT id, title, body FROM notes ORDER BY id")


def last(p: Project) -> dict:
    return p.history("prod")[-1]


def assert_refused_untouched(p: Project, probe: Prober, before: list[str]) -> None:
    assert probe.failed == 0 and probe.ok > 20, (probe.ok, probe.failed)
    assert serving(p) == "v1" and app_id(p) == State.app_id  # never stopped
    assert rows(p) == before
    assert p.migrations("prod") == V1_MIGRATIONS
    assert scratch_databases(p) == []
    rec = last(p)
    steps = {s["name"]: s["status"] for s in rec["steps"]}
    assert steps["rehearse"] == "failed" and "stop" not in steps and "prepare" not in steps


def test_v1_is_promoted_after_a_rehearsal_on_an_empty_restore(p):
    r = p.ok("promote", "dev", "prod")
    assert "predicted downtime" in r.stdout
    assert serving(p) == "v1"
    rec = last(p)
    assert [s["name"] for s in rec["steps"]][:6] == ["lock", "pull", "plan", "backup",
                                                     "rehearse", "prepare"]
    reh = rec["details"]["rehearsal"]
    assert reh["rehearsed"] and [m["name"] for m in reh["migrations"]] == ORIGINAL_MIGRATIONS
    for title, body in (("alpha", "first"), ("dup", "one"), ("dup", "two"), ("gamma", ""),
                        ("delta", "")):
        assert http("POST", p.url("prod") + "/notes", {"title": title, "body": body})[0] == 201
    State.app_id = app_id(p)


def test_a_unique_index_over_duplicate_rows_is_refused_by_the_rehearsal(p):
    p.add_migration(UNIQUE, "CREATE UNIQUE INDEX notes_title_key ON notes (title);\n",
                    "DROP INDEX notes_title_key;\n")
    ship(p, "v2", "unique titles")  # dev has no duplicates
    before = rows(p)
    with prober(p) as probe:
        r = p.fails(8, "deploy", "prod")
    out = r.stdout + r.stderr
    assert "could not create unique index" in out and UNIQUE in out
    assert "CREATE UNIQUE INDEX notes_title_key" in out  # the statement
    assert "Key (title)=(***)" in out and "(dup)" not in out  # the data problem, masked
    assert "nothing on prod was stopped" in out
    assert_refused_untouched(p, probe, before)
    dup = [n["id"] for n in http("GET", p.url("prod") + "/notes?limit=500")[1]["notes"]
           if n["title"] == "dup"]
    assert http("DELETE", f"{p.url('prod')}/notes/{dup[0]}")[0] == 204


def test_a_not_null_over_nulls_is_refused_by_the_rehearsal(p):
    p.add_migration(SUMMARY, "ALTER TABLE notes ADD COLUMN summary text;\n"
                             "UPDATE notes SET summary = left(body, 20) WHERE body <> '';\n"
                             "ALTER TABLE notes ALTER COLUMN summary SET DEFAULT '';\n"
                             "ALTER TABLE notes ALTER COLUMN summary SET NOT NULL;\n",
                    "ALTER TABLE notes DROP COLUMN summary;\n")
    ship(p, "v3", "summary, not null")
    before = rows(p)
    with prober(p) as probe:
        r = p.fails(8, "deploy", "prod")
    out = r.stdout + r.stderr
    assert SUMMARY in out and 'column "summary" of relation "notes" contains null values' in out
    assert "SET NOT NULL" in out
    assert_refused_untouched(p, probe, before)
    assert "summary" not in p.columns("prod")
    for n in http("GET", p.url("prod") + "/notes?limit=500")[1]["notes"]:
        if not n["body"]:
            assert http("DELETE", f"{p.url('prod')}/notes/{n['id']}")[0] == 204


def test_a_passing_rehearsal_goes_on_to_deploy(p):
    # (`conveyor deploy prod --max-downtime` needs the option on cli/remote.py's deploy command)
    r = p.fails(1, "promote", "dev", "prod", "--max-downtime", "0.001")
    assert "more than --max-downtime 0.001 s" in r.stderr
    assert serving(p) == "v1" and app_id(p) == State.app_id and scratch_databases(p) == []

    r = p.ok("deploy", "prod")
    assert "predicted downtime of a recreate deploy" in r.stdout
    assert serving(p) == "v3"
    assert p.migrations("prod") == V1_MIGRATIONS + [version_of(UNIQUE), version_of(SUMMARY)]
    assert p.count("prod") == 2 and scratch_databases(p) == []
    rec = last(p)
    reh = rec["details"]["rehearsal"]
    assert [m["name"] for m in reh["migrations"]] == [UNIQUE, SUMMARY]
    assert all(m["ok"] and m["duration_ms"] >= 0 and "lock_wait_ms" in m
               for m in reh["migrations"])
    assert reh["predicted_downtime"] > 0 and "stop/start/health" in reh["basis"]
    assert reh["rows"] >= 2 and reh["tables"] >= 3  # notes + the two migration tables
    assert rec["result"] == "ok"


def test_a_kill_during_the_rehearsal_leaves_no_scratch_database_and_prod_untouched(p):
    p.add_migration(SLOW, "SELECT pg_sleep(25);\n", "SELECT 1;\n")
    ship(p, "v4", "a slow migration")
    State.app_id = app_id(p)
    before, migrations = rows(p), p.migrations("prod")
    runner = p.container("prod", "runner")
    vm = p.vms["prod"]
    with prober(p) as probe:
        proc = subprocess.Popen(p.argv("deploy", "prod"), env=p.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # the slow migration runs in the scratch db
                if vm.docker("ps", "-q", "--filter",
                             f"name={p.app}-prod-rehearse-").stdout.strip():
                    break
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.2)
            else:
                pytest.fail("the rehearsal's migration container never started")
            assert scratch_databases(p)
            time.sleep(2)
            # SIGKILL of its main process, on the VM (`docker kill` would count as a manual
            # stop, which its restart policy, on-failure, does not restart)
            pid = vm.docker("inspect", "--format", "{{.State.Pid}}", runner).stdout.strip()
            assert pid.isdigit() and pid != "0", pid
            subprocess.run(ssh_argv("prod", "kill", "-KILL", pid), check=True, timeout=60,
                           capture_output=True)
            proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        deadline = time.monotonic() + 180  # the runner is restarted and recovers
        while time.monotonic() < deadline:
            rec = last(p)
            if rec["kind"] in ("promote", "deploy") and rec["result"] == "interrupted" and \
                    not scratch_databases(p):
                break
            time.sleep(1)
        else:
            pytest.fail(f"no recovery: {last(p)} / {scratch_databases(p)}")
    assert probe.failed == 0, (probe.ok, probe.failed)
    assert scratch_databases(p) == []
    assert not vm.docker("ps", "-aq", "--filter", f"name={p.app}-prod-rehearse-").stdout.strip()
    assert serving(p) == "v3" and app_id(p) == State.app_id
    assert rows(p) == before and p.migrations("prod") == migrations
    rec = last(p)
    assert "rehearse" in rec["details"]["recovery"]["undone"]
    p.ok("lock", "status", "prod")
