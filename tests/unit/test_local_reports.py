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


LEDGER = REPO / "examples" / "ledger"


@pytest.fixture
def ledger_stack(monkeypatch):
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "cvunit")
    monkeypatch.setenv("LEDGER_APP_PORT", "18002")
    return open_stack(load_config(LEDGER))


def test_summary_with_a_foreign_tool_says_the_tool_ran_not_none_applied(ledger_stack):
    state = LocalState(ledger_stack, app_image="ledger:local",
                       image_id="sha256:0123456789abcdef0000", migrations_total=None)
    s = up_summary(state, [StepResult("migrations", "ok", 1.0)])
    assert s["migrations_tool"] == "alembic upgrade head"
    lines = summary_lines(s)
    assert lines[2] == ("  migrations  ran `alembic upgrade head` (the tool decides what is "
                        "pending)")
    assert lines[-1] == ("nothing changed: no rebuild, no container changes, "
                         "`alembic upgrade head` ran")
    assert not any("None" in line or "none pending" in line for line in lines)


def test_status_lines_with_a_foreign_tool_show_its_status_output():
    base = {"environment": "local", "project": "p", "compose": "docker compose",
            "url": "http://x", "containers": [],
            "health": {"url": "http://x/health", "ok": True, "status": 200}}
    tool = {"command": "alembic upgrade head", "status_command": "alembic current"}
    ok = {"ok": False, "applied": [], "pending": [], "drift": [], "error": "...",
          "tool": {**tool, "exit_code": 0, "output": ["INFO  [alembic] Context", "0002 (head)"]}}
    lines = status_lines({**base, "migrations": ok})
    assert lines[-4:] == [
        "  migrations  managed by the project's tool (`alembic upgrade head`)",
        "  `alembic current`:", "    INFO  \\[alembic] Context", "    0002 (head)"]
    assert not any("applied" in line or "unknown" in line for line in lines)
    failed = {**ok, "tool": {**tool, "exit_code": 127, "output": ["alembic: not found"]}}
    assert status_lines({**base, "migrations": failed})[-2:] == [
        ("  `alembic current` [red]failed (exit 127: the command is not in the image (not "
         "found on its PATH))[/red]:"), "    alembic: not found"]
    no_status = {**ok, "tool": {"command": "alembic upgrade head", "status_command": None}}
    lines = status_lines({**base, "migrations": no_status})
    assert "conveyor cannot tell" in lines[-1] and "status_command" in lines[-1]
    not_run = {**ok, "tool": tool}
    assert "not run" in status_lines({**base, "migrations": not_run})[-1]
