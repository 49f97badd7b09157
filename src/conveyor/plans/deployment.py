"""A planned deployment (main plan + the finalize plan that always runs after it) and how it
runs: the main plan, then the record, then each finalize step whatever happened before."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.imageref import REVISION_LABEL
from conveyor.plan import EventSink, Plan, PlanResult, execute
from conveyor.records import step_entries
from conveyor.state.deploy import DeployState
from conveyor.steps.lock import unlock_step
from conveyor.targets.remote import Remote


@dataclass
class Deployment:
    remote: Remote
    state: DeployState
    main: Plan[DeployState]
    finalize: Plan[DeployState]

    @property
    def record(self) -> Any:
        return self.state.record

    def describe(self) -> list[dict[str, Any]]:
        return self.main.describe() + [
            {**d, "step": d["step"] + " (always)"} for d in self.finalize.describe()]


def _fill_record(dep: Deployment, result: PlanResult) -> None:
    st, rec = dep.state, dep.state.record
    rec.finished_at = time.time()
    rec.steps = step_entries(result.steps)
    config = (st.current or {}).get("Config") or {}
    labels = config.get("Labels") or {}
    rec.previous_image = labels.get("conveyor.image") or (config.get("Image") if st.current
                                                          else None)
    rec.previous_revision = labels.get(REVISION_LABEL)
    rec.revision = st.image_revision or rec.revision
    rec.migrations_applied = list(st.migrations_applied)
    rec.tests = st.tests
    if result.error is not None:
        rec.result = "failed"
        rec.error = dep.remote.redactor(str(result.error))
    elif st.tests_failed:
        rec.result = "tests-failed"
        rec.error = "the tests failed against the deployed app"
        for s in rec.steps:
            if s["name"] == "test":
                s["status"] = "failed"
    else:
        rec.result = "ok"


def run_deployment(dep: Deployment, emit: EventSink,
                   check: Callable[[], None] | None = None) -> PlanResult:
    """Execute the main plan, then always the finalize plan (report, record + unlock).

    Returns the main plan's result; its `error` (if any) is for the caller to raise after
    reporting. A failing test command is not an error of the plan: `state.tests_failed`.
    """
    st = dep.state
    transport = dep.remote.transport
    result = execute(dep.main, st, emit, transport=transport, raise_on_failure=False,
                     check=check)
    _fill_record(dep, result)
    if not st.lock_id:
        # the lock was not taken (held by another deployment, host unreachable): nothing was
        # done on the host, and there is no record to write under someone else's lock
        return result
    # each finalize step runs whatever happened to the one before it
    st.finalize_results = [
        execute(Plan(dep.finalize.name, [step]), st, emit, transport=transport,
                raise_on_failure=False)
        for step in dep.finalize.steps]
    if st.lock_id:  # the record step could not release it: try once more
        execute(Plan(dep.finalize.name, [unlock_step(dep.remote)]), st, emit,
                transport=transport, raise_on_failure=False)
    return result
