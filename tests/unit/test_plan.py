"""Plans (conveyor.plan): steps on a typed state, run in order, timings, undo in reverse on
failure, the dry-run description; and the secret masker the renderer uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from conveyor.errors import ConveyorError
from conveyor.masking import Redactor
from conveyor.plan import Plan, Step, execute


@dataclass
class Log:
    """A typed state for the test plan: what the steps did."""

    done: list[str] = field(default_factory=list)


def test_steps_run_in_order_and_failure_undoes_completed_steps_in_reverse():
    events: list[dict] = []

    def act(name, fail=False):
        def run(state, io):
            state.done.append(name)
            io.log(f"{name} output")
            if fail:
                raise ConveyorError(f"{name} broke")
        return run

    plan = Plan("t", [
        Step("a", act("a"), undo=lambda state, io: state.done.append("undo a")),
        Step("b", act("b")),
        Step("c", act("c"), undo=lambda state, io: state.done.append("undo c")),
        Step("d", act("d", fail=True), undo=lambda state, io: state.done.append("undo d")),
        Step("e", act("e")),
    ])
    state = Log()
    with pytest.raises(ConveyorError, match="d broke") as info:
        execute(plan, state, events.append)
    assert state.done == ["a", "b", "c", "d", "undo c", "undo a"]
    result = info.value.plan_result
    assert [(s.name, s.status) for s in result.steps] == [
        ("a", "undone"), ("b", "ok"), ("c", "undone"), ("d", "failed")]
    assert result.step("d").output == ["d output"]
    assert [e["event"] for e in events].count("step_started") == 4


def test_dry_run_description_lists_argv():
    plan = Plan("t", [Step("pull", lambda state, io: None, describe=[["docker", "pull", "a b"]])])
    assert plan.describe() == [{"step": "pull", "commands": ["docker pull 'a b'"], "undo": [],
                                "reads": [], "writes": []}]


def test_redactor_masks_values_and_url_passwords():
    r = Redactor(["s3cr3t-value"])
    assert r("pw=s3cr3t-value x") == "pw=*** x"
    assert r({"u": ["postgresql://u:p%40ss@h:5432/db"]}) == {"u": ["postgresql://u:***@h:5432/db"]}
