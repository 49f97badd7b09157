"""End to end on the test bed, `conveyor deploy dev --allow-drift` (issue 12: the drift error
named an option `deploy` did not have). A copy of examples/notes is deployed to dev; an applied
migration is then edited in place and the image rebuilt: `deploy dev` refuses (nothing is
touched, the previous version keeps serving) and its hint names `conveyor deploy dev
--allow-drift`; with the option the deploy goes through, says so in a warning line and in the
migrate step, and the deployment record keeps it. Isolation: tests/e2e/helpers.Project (own app
name, port, state directory, labels; everything removed at the end).
"""

from __future__ import annotations

import json
import re
import secrets

import pytest

from tests.e2e.helpers import Project, http

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def p(testbed, tmp_path_factory):
    project = Project.create(tmp_path_factory.mktemp("drift-e2e"), testbed,
                             app=f"notes-drift-{secrets.token_hex(2)}", envs=("dev",))
    try:
        yield project
    finally:
        project.cleanup()


def _deployment(p: Project, out: str) -> dict:
    dep = re.search(r"(?m), deployment (\S+)$", out).group(1)
    return json.loads(p.ok("history", "dev", dep, "--json").stdout)


def test_an_edited_migration_is_refused_then_deployed_with_allow_drift(p):
    first = p.build_and_push()
    p.ok("setup", "dev")
    p.ok("deploy", "dev")
    serving = p.vms["dev"].inspect(p.container("dev"))["Config"]["Labels"]["conveyor.image"]
    assert serving == first

    # an applied migration edited in place (a comment: the checksum changes)
    name = min(d.name for d in (p.dir / "migrations").iterdir() if d.is_dir())
    up = p.dir / "migrations" / name / "up.sql"
    up.write_text(up.read_text() + "\n-- edited after it was applied\n")
    p.commit(f"edit {name} in place")
    second = p.build_and_push()

    refused = p.run("deploy", "dev")
    assert refused.returncode != 0, refused.stdout[-3000:]
    out = refused.stdout + refused.stderr
    assert "migration refused on dev" in out and name in out, out[-3000:]
    assert "`conveyor deploy dev --allow-drift`" in out, out[-3000:]
    error = next(ln for ln in out.splitlines() if ln.startswith("error: "))
    assert "re-run with --allow-drift" not in error, error  # the engine CLI's wording
    assert "The app was not touched: the previous version keeps serving" in out, out[-3000:]
    labels = p.vms["dev"].inspect(p.container("dev"))["Config"]["Labels"]
    assert labels["conveyor.image"] == first  # nothing was touched
    assert http("GET", p.url("dev") + "/health")[0] == 200

    ok = p.ok("deploy", "dev", "--allow-drift")
    out = ok.stdout + ok.stderr
    assert "warning: --allow-drift" in out, out[-3000:]
    assert "WARNING: --allow-drift" in out, out[-3000:]
    rec = _deployment(p, ok.stdout)
    assert rec["result"] == "ok" and rec["image"] == second, rec
    assert rec["options"]["allow_drift"] is True
    migrate = next(s for s in rec["steps"] if s["name"] == "migrate")
    assert "--allow-drift" in migrate["notes"], migrate
    assert p.vms["dev"].inspect(p.container("dev"))["Config"]["Labels"]["conveyor.image"] == second
    assert http("GET", p.url("dev") + "/health")[0] == 200
