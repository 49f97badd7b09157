"""reports/local.py: the summary of `conveyor up` from the plan's state, its lines, which
container's log explains a failed step, and the status lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.commands.compose import Container
from conveyor.config import load_config
from conveyor.plan import StepResult
from conveyor.reports.local import failure_service, status_lines, summary_lines, up_summary
from conveyor.state.local import LocalState
from conveyor.targets.local import open_stack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


@pytest.fixture
def stack(monkeypatch):
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "cvunit")
    monkeypatch.setenv("NOTES_APP_PORT", "18001")
    return open_stack(load_config(EXAMPLE))


def _quiet(stack) -> LocalState:
    return LocalState(stack, app_image="notes:local", image_id="sha256:0123456789abcdef0000",
                      migrations_total=3)


def test_summary_says_nothing_changed_only_when_nothing_did(stack):
    steps = [StepResult("docker", "ok", 0.01234)]
    s = up_summary(_quiet(stack), steps)
    assert s["nothing_changed"] and s["url"] == "http://127.0.0.1:18001"
    assert s["steps"] == [{"name": "docker", "status": "ok", "duration": 0.012}]
    for change in ({"built": True}, {"containers_changed": ["p_app_1"]},
                   {"migrations_applied": ["2030-01-01-000000_x"]}):
        state = _quiet(stack)
        for k, v in change.items():
            setattr(state, k, v)
        assert not up_summary(state, steps)["nothing_changed"]


def test_summary_lines(stack):
    s = up_summary(_quiet(stack), [StepResult("docker", "ok", 0.5), StepResult("image", "ok", 1)])
    assert summary_lines(s) == [
        "up: http://127.0.0.1:18001",
        "  image       notes:local (0123456789ab, unchanged)",
        "  migrations  none pending (3 applied)",
        "  steps       docker 0.50s, image 1.00s (total 1.50s)",
        "nothing changed: no rebuild, no container changes, no pending migrations"]


def test_failure_service_names_the_log_that_explains_the_step(stack):
    up = Container("a", "running", "app", "i", "n", "Up")
    exited = Container("d", "exited", "db", "i", "n", "Exited (1)")
    assert failure_service(stack, "postgres") == "db"
    assert failure_service(stack, "migrations") == "db"
    assert failure_service(stack, "health") == "app"
    assert failure_service(stack, "containers", [up, exited]) == "db"
    assert failure_service(stack, "containers", [up]) == "app"
    assert failure_service(stack, "image") is None


def test_status_lines_mark_what_is_not_running():
    d = {"environment": "local", "project": "p", "compose": "docker compose",
         "url": "http://x", "containers": [
             {"service": "app", "state": "running", "health": None, "image": "a", "ports": ""},
             {"service": "db", "state": "absent", "health": None, "image": "pg", "ports": ""}],
         "health": {"url": "http://x/health", "ok": False, "error": "refused [x]"},
         "migrations": {"ok": True, "applied": [{}], "pending": [], "drift": []}}
    lines = status_lines(d)
    assert lines[0] == "[bold]local[/bold]: compose project p (docker compose), http://x"
    assert lines[3].startswith("[red]  db ") and not lines[2].startswith("[red]")
    assert lines[4] == "  health      GET http://x/health -> [red]refused \\[x][/red]"
    assert lines[5:] == ["  migrations  1 applied; pending: none",
                         "  drift       none (every applied migration matches its file)"]
