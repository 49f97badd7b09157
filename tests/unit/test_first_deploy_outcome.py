"""Issue 15 item 2: a failed first deployment (no app container served before) does not claim
that "the previous version kept serving throughout"."""

from __future__ import annotations

from test_prod_plans import (  # the prod plan's fake host and fixtures
    V1,
    app_server,  # noqa: F401 - fixture
    env_secrets,  # noqa: F401 - fixture
    host_for,
    plan,
)

from conveyor.errors import LintBlocked
from conveyor.plans.deployment import run_deployment

DROP = {**V1, "2026-03-01-000001_drop": {"up.sql": "DROP TABLE notes;\n",
                                          "down.sql": "SELECT 1;\n"}}


def test_a_first_deployment_that_fails_before_stop_says_nothing_serves(tmp_path, app_server):  # noqa: F811
    port, app = app_server
    app.serving = "none"
    host = host_for(app, files=DROP, current=False)
    remote, dep = plan(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, LintBlocked)
    lines = dep.state.outcome["lines"]
    assert not any("kept serving" in line for line in lines), lines
    assert lines == [(f"There was no previous version (first deployment): nothing serves "
                     f"{remote.url}, and the database was not changed.")]


def test_a_deployment_that_fails_before_stop_says_the_previous_version_kept_serving(
        tmp_path, app_server):  # noqa: F811
    port, app = app_server
    host = host_for(app, files=DROP, current=True)
    _remote, dep = plan(tmp_path, port, host)
    run_deployment(dep, lambda e: None)
    assert dep.state.outcome["lines"] == [
        ("Nothing was stopped: the previous version kept serving throughout, and the database "
        "was not changed.")]
