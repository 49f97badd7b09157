"""End to end, strategy = "zero-downtime" on the test bed: a copy of examples/notes whose prod
environment has the reverse proxy (the test bed's offline nginx image, BASE_PROXY_IMAGE). While
`conveyor deploy prod` runs, a prober sends GET /health to the prod VM's address every 20 ms
(bounded in time; only that 127.x address).

The story, in order (one environment; each test builds on the last):
  1. setup prod puts the proxy in place (503 until something is deployed); v1 deployed;
  2. v2 (an expand migration: a nullable column, backfilled): 0 failed requests, v2 serves,
     the app container runs the new digest;
  3. v3 never becomes healthy in prod: 0 failed requests, v2 keeps serving;
  4. v4 drops v2's column (a contract migration): refused under zero-downtime (nothing changes),
     accepted with --strategy recreate;
  5. a rollback to v2 (older than v4's contract migration) is refused;
  6. the prod VM's Docker engine restarts: the proxy (restart policy) and the app come back;
     `conveyor status prod` shows the proxy.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from conveyor.errors import HealthCheckFailed, LintBlocked, NoRollbackTarget
from tests.e2e.helpers import Project
from tests.e2e.helpers import http as http_request

pytestmark = pytest.mark.e2e

EXTRA = "2027-02-01-000001_notes_extra"
DROP_EXTRA = "2027-02-02-000001_drop_notes_extra"
HEALTH_500_IN_PROD = '''\
async def health(request: Request) -> JSONResponse:
    if os.environ.get("APP_ENV") == "prod":  # a prod-only misconfiguration
        return JSONResponse({"status": "broken in prod"}, status_code=500)
'''
PROBE_EVERY = 0.020
PROBE_MAX = 240.0


class Prober(threading.Thread):
    """GET /health every 20 ms on one 127.x address (new connection each, 1 s timeout)."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(daemon=True)
        assert address.startswith("127."), address
        self.address, self.port = address, port
        self.samples: list[tuple[float, int | None]] = []
        self.done = threading.Event()

    def probe(self) -> int | None:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=1.0)
        try:
            conn.request("GET", "/health", headers={"Connection": "close"})
            r = conn.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.done.is_set() and time.monotonic() - t0 < PROBE_MAX:
            self.samples.append((time.monotonic(), self.probe()))
            self.done.wait(PROBE_EVERY)

    def __enter__(self) -> Self:
        self.start()
        deadline = time.monotonic() + 10
        while not self.samples or self.samples[-1][1] != 200:
            assert time.monotonic() < deadline, "prod does not answer before the deploy"
            time.sleep(PROBE_EVERY)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.3)
        self.done.set()
        self.join(timeout=10)

    @property
    def failed(self) -> list[tuple[float, int | None]]:
        return [s for s in self.samples if s[1] != 200]


def to_zero_downtime(project: Project) -> None:
    """The project's prod environment gets strategy = "zero-downtime" (committed)."""
    toml = (project.dir / "conveyor.toml").read_text()
    toml, n = re.subn(r'(?m)^promote_from = "dev"$', 'promote_from = "dev"\n'
                      'strategy = "zero-downtime"', toml, count=1)
    assert n == 1
    (project.dir / "conveyor.toml").write_text(toml)
    project.commit("prod: zero-downtime")


@contextlib.contextmanager
def proxy_project(root: Path, testbed: dict, app: str, *,
                  zero_downtime: bool) -> Iterator[Project]:
    """A copy of the example with a proxy image for prod (and its strategy, if asked), v1 built,
    pushed and deployed to dev; removed afterwards."""
    project = Project.create(root, testbed, app=f"{app}-{secrets.token_hex(2)}",
                             health_timeout=8)
    with open(project.dir / "conveyor.toml", "a", encoding="utf-8") as f:
        f.write('\n[environments.prod.proxy]\nimage = "${BASE_PROXY_IMAGE:-nginx:1.27}"\n'
                "drain_timeout = 10\n")
    project.commit("prod: a proxy image")
    if zero_downtime:
        to_zero_downtime(project)
    try:
        project.build_and_push()
        project.ok("setup", "dev")
        project.ok("deploy", "dev")
        yield project
    finally:
        project.cleanup()


@pytest.fixture(scope="module")
def p(testbed, tmp_path_factory):
    with proxy_project(tmp_path_factory.mktemp("zd-e2e"), testbed, "notes-zd",
                       zero_downtime=True) as project:
        yield project


def ship(p: Project, version: str, message: str) -> str:
    p.set_version(version)
    p.commit(message)
    image = p.build_and_push()
    p.ok("deploy", "dev")
    return image


def serving(p: Project) -> str:
    status, body = http_request("GET", p.url("prod") + "/health")
    assert status == 200, (status, body)
    return body["version"]


def test_setup_puts_the_proxy_in_place_and_the_first_deploy_serves(p):
    p.ok("setup", "prod")
    proxy = p.vms["prod"].inspect(p.container("prod", "proxy"))
    assert proxy is not None and proxy["State"]["Running"]
    assert proxy["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert http_request("GET", p.url("prod") + "/health")[0] == 503  # nothing deployed yet
    p.ok("deploy", "prod")
    assert serving(p) == "v1"
    app = p.vms["prod"].inspect(p.container("prod"))
    assert app["HostConfig"]["PortBindings"] in (None, {})  # only the proxy publishes


def test_an_expand_deploy_fails_no_request_and_ends_on_the_new_digest(p):
    p.add_migration(EXTRA, "ALTER TABLE notes ADD COLUMN extra text;\n"
                    "UPDATE notes SET extra = left(title, 4);\n",
                    "ALTER TABLE notes DROP COLUMN extra;\n")
    image = ship(p, "v2", "v2: an expand migration")
    with Prober(p.addresses["prod"], p.ports["prod"]) as probe:
        p.ok("deploy", "prod")
    assert probe.failed == [], f"{len(probe.failed)} of {len(probe.samples)} failed"
    assert len(probe.samples) > 50
    assert serving(p) == "v2"
    app = p.vms["prod"].inspect(p.container("prod"))
    assert app["Config"]["Labels"]["conveyor.image"] == image
    assert "extra" in p.columns("prod")
    rec = p.history("prod")[-1]
    assert rec["details"]["migration_classes"] == {EXTRA: "expand"}
    assert not p.vms["prod"].inspect(p.container("prod", "app-previous"))["State"]["Running"]


def test_a_never_healthy_version_fails_no_request_and_the_old_one_serves(p):
    app_py = p.dir / "app" / "notes" / "app.py"
    original = app_py.read_text()
    head = "async def health(request: Request) -> JSONResponse:\n"
    app_py.write_text(original.replace(head, HEALTH_500_IN_PROD))
    image = ship(p, "v3", "v3: /health answers 500 in prod")
    with Prober(p.addresses["prod"], p.ports["prod"]) as probe:
        p.fails(HealthCheckFailed.exit_code, "deploy", "prod")
    assert probe.failed == [], f"{len(probe.failed)} of {len(probe.samples)} failed"
    assert serving(p) == "v2"
    failed = p.vms["prod"].inspect(p.container("prod", "app-failed"))
    assert failed["Config"]["Labels"]["conveyor.image"] == image
    assert not failed["State"]["Running"]
    app_py.write_text(original)


def test_a_contract_migration_is_refused_then_accepted_with_recreate(p):
    p.add_migration(DROP_EXTRA, "ALTER TABLE notes DROP COLUMN extra;\n",
                    "ALTER TABLE notes ADD COLUMN extra text;\n")
    ship(p, "v4", "v4: drop the extra column")
    r = p.fails(LintBlocked.exit_code, "deploy", "prod")
    assert "DROP COLUMN extra" in r.stderr and "later deploy" in r.stderr, r.stderr
    assert serving(p) == "v2" and "extra" in p.columns("prod")
    p.ok("deploy", "prod", "--strategy", "recreate", "--allow-destructive")
    assert serving(p) == "v4" and "extra" not in p.columns("prod")
    rec = p.history("prod")[-1]
    assert rec["details"]["migration_classes"] == {DROP_EXTRA: "contract"}


def test_a_rollback_past_the_contract_migration_is_refused(p):
    r = p.fails(NoRollbackTarget.exit_code, "rollback", "prod")
    assert DROP_EXTRA in r.stderr and "--force" in r.stderr, r.stderr
    assert serving(p) == "v4"


def test_the_proxy_survives_a_restart_of_the_docker_engine(p):
    from tests.faults.conftest import bed_script

    tb = bed_script()
    vm = tb.VMS["prod"]
    with tb.state_lock():
        assert tb.vm_dockerd(vm).pid(), "the prod VM's dockerd is not the test bed's own"
        tb.stop_vm_engine(vm)
        proc = tb.start_vm_dockerd(vm)
        tb.wait_until(lambda: tb.docker_ping(vm.socket), "engine", "prod dockerd", 60, proc)
    deadline = time.monotonic() + 60
    while http_request("GET", p.url("prod") + "/health")[0] != 200:
        assert time.monotonic() < deadline, "prod does not answer after the engine restart"
        time.sleep(0.5)
    assert serving(p) == "v4"
    out = p.ok("status", "prod").stdout
    assert re.search(rf"proxy\s+{p.app}-prod-proxy running", out), out
