"""plans/local.py: the plan of `conveyor up`, its steps in the seed's order, what each reads
and writes on the state, and its dry-run description (no secret in it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conveyor.commands import compose as composecmd
from conveyor.config import load_config
from conveyor.plans.local import up_plan
from conveyor.state.local import LocalState
from conveyor.targets.local import open_stack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"
STEPS = ["docker", "compose file", "image", "containers", "postgres", "migrations", "health"]


@pytest.fixture
def state(monkeypatch) -> LocalState:
    for var, value in {"COMPOSE_PROJECT_NAME": "cvunit", "NOTES_APP_PORT": "18001",
                       "NOTES_DB_PORT": "18002", "NOTES_DB_PASSWORD": "s3cret-pw"}.items():
        monkeypatch.setenv(var, value)
    return LocalState(open_stack(load_config(EXAMPLE)))


def test_up_plan_steps_and_dry_run_description(state):
    state.compose = composecmd.v1("/usr/bin/docker-compose")
    plan = up_plan(state)
    assert [s.name for s in plan.steps] == STEPS
    described = {d["step"]: d["commands"] for d in plan.describe()}
    assert described["containers"] == [
        (f"/usr/bin/docker-compose --project-name cvunit --file {EXAMPLE}/docker-compose.yml "
        "up --detach --no-build")]
    assert described["docker"] == ["docker info --format '{{.ServerVersion}}'",
                                   "docker compose version --short"]
    assert any("--label 'conveyor.inputs=<inputs hash>'" in c for c in described["image"])
    assert described["health"] == ["GET http://127.0.0.1:18001/health until 200 (at most 60 s)"]
    text = repr(plan.describe())
    assert "s3cret-pw" not in text and "notes:***@127.0.0.1:18002" in text


def test_dry_run_before_compose_is_known(state):
    described = {d["step"]: d["commands"] for d in up_plan(state).describe()}
    assert described["compose file"] == [
        (f"'<docker compose|docker-compose>' --project-name cvunit --file "
        f"{EXAMPLE}/docker-compose.yml config --format json")]


def test_steps_declare_fields_of_the_state_and_read_only_what_earlier_steps_wrote(state):
    fields = {f.name for f in dataclasses.fields(LocalState)}
    options = {"target", "refresh", "db_timeout"}
    written: set[str] = set()
    for step in up_plan(state).steps:
        assert set(step.reads) <= fields and set(step.writes) <= fields, step.name
        assert set(step.reads) - options <= written, step.name
        written |= set(step.writes)
    assert written >= {"compose", "services", "app_image", "image_id", "built", "containers",
                       "containers_changed", "migrations_applied", "migrations_total"}
