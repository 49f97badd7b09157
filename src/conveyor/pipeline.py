"""Stages as plans: a list of named steps, built before anything runs, then executed.

A plan can be printed (`--dry-run`: each step with the argv it will run) without side effects.
Execution runs the steps in order, times each one, sends events to a sink (the renderer, a
deployment record), keeps each step's output, and on failure runs the `undo` of the steps that
completed, in reverse order, before re-raising the error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from conveyor.errors import ConveyorError


class EventSink(Protocol):
    def __call__(self, event: dict[str, Any]) -> None: ...


@dataclass
class StepContext:
    """Handed to each step's action: emit output lines, stash values for later steps."""

    plan: "Plan"
    step: "Step"
    emit: EventSink
    values: dict[str, Any]
    output: list[str] = field(default_factory=list)

    def log(self, line: str) -> None:
        self.output.append(line)
        self.emit({"event": "output", "step": self.step.name, "line": line})

    def note(self, text: str) -> None:
        """A short, user-facing detail of the step (shown next to its duration)."""
        self.emit({"event": "note", "step": self.step.name, "text": text})
        self.step_notes.append(text)

    @property
    def step_notes(self) -> list[str]:
        return self.values.setdefault(f"_notes:{self.step.name}", [])


@dataclass
class Step:
    name: str
    action: Callable[[StepContext], Any]
    describe: Sequence[Sequence[str] | str] = ()
    undo: Callable[[StepContext], Any] | None = None
    undo_describe: Sequence[Sequence[str] | str] = ()


@dataclass
class StepResult:
    name: str
    status: str  # ok | failed | skipped | undone | undo-failed
    duration: float
    notes: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "duration": round(self.duration, 3),
                "notes": self.notes, "output": self.output, "error": self.error}


@dataclass
class Plan:
    name: str
    steps: list[Step]

    def describe(self) -> list[dict[str, Any]]:
        def fmt(item: Sequence[str] | str) -> str:
            import shlex

            return item if isinstance(item, str) else shlex.join([str(a) for a in item])

        return [{"step": s.name, "commands": [fmt(c) for c in s.describe],
                 "undo": [fmt(c) for c in s.undo_describe]} for s in self.steps]


@dataclass
class PlanResult:
    plan: str
    ok: bool
    steps: list[StepResult]
    duration: float
    error: BaseException | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)


def execute(plan: Plan, emit: EventSink, values: dict[str, Any] | None = None,
            *, raise_on_failure: bool = True) -> PlanResult:
    values = {} if values is None else values
    results: list[StepResult] = []
    done: list[tuple[Step, StepContext]] = []
    t_plan = time.monotonic()
    emit({"event": "plan_started", "plan": plan.name, "steps": [s.name for s in plan.steps]})
    error: BaseException | None = None
    for step in plan.steps:
        ctx = StepContext(plan, step, emit, values)
        emit({"event": "step_started", "step": step.name})
        t0 = time.monotonic()
        try:
            step.action(ctx)
        except BaseException as exc:  # noqa: BLE001 - re-raised after undo
            duration = time.monotonic() - t0
            results.append(StepResult(step.name, "failed", duration, ctx.step_notes, ctx.output,
                                      str(exc)))
            emit({"event": "step_failed", "step": step.name, "duration": duration,
                  "error": str(exc), "hint": getattr(exc, "hint", None)})
            error = exc
            break
        duration = time.monotonic() - t0
        results.append(StepResult(step.name, "ok", duration, ctx.step_notes, ctx.output))
        emit({"event": "step_finished", "step": step.name, "duration": duration,
              "notes": ctx.step_notes})
        done.append((step, ctx))

    if error is not None:
        for step, ctx in reversed(done):
            if step.undo is None:
                continue
            emit({"event": "undo_started", "step": step.name})
            t0 = time.monotonic()
            try:
                step.undo(ctx)
                status, err = "undone", None
            except Exception as exc:  # noqa: BLE001 - report every undo failure, go on
                status, err = "undo-failed", str(exc)
            emit({"event": "undo_finished", "step": step.name, "status": status, "error": err,
                  "duration": time.monotonic() - t0})
            for r in results:
                if r.name == step.name:
                    r.status, r.error = status, err
    result = PlanResult(plan.name, error is None, results, time.monotonic() - t_plan, error,
                        values)
    emit({"event": "plan_finished", "plan": plan.name, "ok": result.ok,
          "duration": result.duration})
    if error is not None and raise_on_failure:
        if isinstance(error, ConveyorError):
            error.plan_result = result  # type: ignore[attr-defined]
        raise error
    return result
