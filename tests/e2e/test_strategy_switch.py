"""End to end on the test bed: an environment deployed with strategy = "recreate" (the app
container publishes the port itself) moves to "zero-downtime" without `conveyor setup`:
  1. v1 on dev and prod, recreate (prod set up by its first deploy);
  2. the config says zero-downtime now: `deploy prod` is refused before anything changes (the
     old container holds the port), with the way out; v1 keeps serving;
  3. `deploy prod --strategy recreate` stops v1, puts the proxy on the port, and v2 serves
     behind it (only the proxy publishes);
  4. v3 by zero-downtime: 0 failed requests at 20 ms probing (the prober of
     test_zero_downtime: only the prod VM's 127.x address, bounded in time).
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import http as http_request
from tests.e2e.test_zero_downtime import Prober, proxy_project, serving, ship, to_zero_downtime

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def p(testbed, tmp_path_factory):
    with proxy_project(tmp_path_factory.mktemp("switch-e2e"), testbed, "notes-sw",
                       zero_downtime=False) as project:
        yield project


def test_a_recreate_environment_moves_behind_the_proxy_with_one_short_downtime(p):
    p.ok("deploy", "prod")
    assert serving(p) == "v1"
    app = p.vms["prod"].inspect(p.container("prod"))
    assert app["HostConfig"]["PortBindings"]  # recreate: the app publishes the port
    v1_id = app["Id"]

    to_zero_downtime(p)
    ship(p, "v2", "v2")

    r = p.fails(20, "deploy", "prod")
    out = r.stdout + r.stderr
    assert "publishes" in out and "itself" in out, out
    assert "conveyor deploy prod --strategy recreate" in out, out
    assert serving(p) == "v1" and p.vms["prod"].inspect(p.container("prod"))["Id"] == v1_id
    assert p.vms["prod"].inspect(p.container("prod", "proxy")) is None

    p.ok("deploy", "prod", "--strategy", "recreate")
    assert serving(p) == "v2"
    proxy = p.vms["prod"].inspect(p.container("prod", "proxy"))
    assert proxy is not None and proxy["State"]["Running"]
    assert p.vms["prod"].inspect(p.container("prod"))["HostConfig"]["PortBindings"] in (None, {})
    rec = p.history("prod")[-1]
    assert rec["result"] == "ok" and rec["details"]["strategy"] == "recreate"

    ship(p, "v3", "v3")
    with Prober(p.addresses["prod"], p.ports["prod"]) as probe:
        p.ok("deploy", "prod")
    assert probe.failed == [], f"{len(probe.failed)} of {len(probe.samples)} failed"
    assert serving(p) == "v3"
    assert http_request("GET", p.url("prod") + "/health")[0] == 200
