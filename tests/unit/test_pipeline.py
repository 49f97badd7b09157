"""Plans: steps in order, timings, undo in reverse on failure, dry-run description."""

from __future__ import annotations

import pytest

from conveyor.errors import ConveyorError
from conveyor.pipeline import Plan, Step, execute
from conveyor.render import Redactor


def test_steps_run_in_order_and_failure_undoes_completed_steps_in_reverse():
    log: list[str] = []
    events: list[dict] = []

    def act(name, fail=False):
        def run(ctx):
            log.append(name)
            ctx.log(f"{name} output")
            if fail:
                raise ConveyorError(f"{name} broke")
        return run

    plan = Plan("t", [
        Step("a", act("a"), undo=lambda ctx: log.append("undo a")),
        Step("b", act("b")),
        Step("c", act("c"), undo=lambda ctx: log.append("undo c")),
        Step("d", act("d", fail=True), undo=lambda ctx: log.append("undo d")),
        Step("e", act("e")),
    ])
    with pytest.raises(ConveyorError, match="d broke") as info:
        execute(plan, events.append)
    assert log == ["a", "b", "c", "d", "undo c", "undo a"]
    result = info.value.plan_result
    assert [(s.name, s.status) for s in result.steps] == [
        ("a", "undone"), ("b", "ok"), ("c", "undone"), ("d", "failed")]
    assert result.step("d").output == ["d output"]
    assert [e["event"] for e in events].count("step_started") == 4


def test_dry_run_description_lists_argv():
    plan = Plan("t", [Step("pull", lambda c: None, describe=[["docker", "pull", "a b"]])])
    assert plan.describe() == [{"step": "pull", "commands": ["docker pull 'a b'"], "undo": []}]


def test_redactor_masks_values_and_url_passwords():
    r = Redactor(["s3cr3t-value"])
    assert r("pw=s3cr3t-value x") == "pw=*** x"
    assert r({"u": ["postgresql://u:p%40ss@h:5432/db"]}) == {"u": ["postgresql://u:***@h:5432/db"]}
