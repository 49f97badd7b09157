"""Plans: a list of named steps on a typed state, built before anything runs, then executed.

A step is data plus two plain functions: `action(state, io)` and an optional `undo(state, io)`.
`state` is the plan's typed state (a dataclass: what earlier steps found and did), `io` is the
step's window on the world: the transport that runs argv on the host (`io.run`), and the output
lines and notes the step reports (`io.log`, `io.note`). A step declares which fields of the
state it reads and writes, so a plan can be checked and printed without running it.

Nothing in a step closes over CLI objects: the same plan runs in the CLI process or elsewhere
(the host-side runner) given a state and a transport. `Plan.describe()` is the plan as data
(each step, the argv it runs, its undo) for `--dry-run`.

`execute` runs the steps in order, times each one, sends events to a sink (the renderer, a
journal), keeps each step's output, and on failure runs the `undo` of the steps that completed,
in reverse order, before returning (or raising) the error.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from conveyor.errors import ConveyorError
from conveyor.transport import Result, Transport

S = TypeVar("S")
Argv = Sequence[str]
Described = Sequence[str] | str


class EventSink(Protocol):
    def __call__(self, event: dict[str, Any]) -> None: ...


def _no_events(event: dict[str, Any]) -> None:
    return None


@dataclass
class StepIO:
    """What an action may do besides reading and writing the state."""

    step: str
    transport: Transport | None = None
    emit: EventSink = _no_events
    output: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def log(self, line: str) -> None:
        self.output.append(line)
        self.emit({"event": "output", "step": self.step, "line": line})

    def note(self, text: str) -> None:
        """A short, user-facing detail of the step (shown next to its duration)."""
        self.notes.append(text)
        self.emit({"event": "note", "step": self.step, "text": text})

    def run(self, argv: Argv, *, stream: bool = False, **kw: Any) -> Result:
        """Run argv through the plan's transport; `stream=True` logs each output line."""
        if self.transport is None:
            raise ConveyorError(f"step {self.step!r} runs commands but its plan has no transport")
        return self.transport.run(argv, stream=self.log if stream else None, **kw)


Action = Callable[[S, StepIO], None]


@dataclass
class Step(Generic[S]):
    name: str
    action: Action[S]
    describe: Sequence[Described] = ()
    undo: Action[S] | None = None
    undo_describe: Sequence[Described] = ()
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


def _fmt(item: Described) -> str:
    return item if isinstance(item, str) else shlex.join([str(a) for a in item])


@dataclass
class Plan(Generic[S]):
    name: str
    steps: list[Step[S]]

    def describe(self) -> list[dict[str, Any]]:
        return [{"step": s.name, "commands": [_fmt(c) for c in s.describe],
                 "undo": [_fmt(c) for c in s.undo_describe],
                 "reads": list(s.reads), "writes": list(s.writes)} for s in self.steps]


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
class PlanResult:
    plan: str
    ok: bool
    steps: list[StepResult]
    duration: float
    error: BaseException | None = None

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def failed_step(self) -> str | None:
        return next((s.name for s in self.steps if s.status == "failed"), None)


def execute(plan: Plan[S], state: S, emit: EventSink = _no_events, *,
            transport: Transport | None = None, raise_on_failure: bool = True,
            check: Callable[[], None] | None = None) -> PlanResult:
    """Run the plan on `state`. `check` is called before each step; raising there (e.g. the
    controller cancelled) fails that step, and the completed ones are undone."""
    results: list[StepResult] = []
    done: list[tuple[Step[S], StepIO, StepResult]] = []
    t_plan = time.monotonic()
    emit({"event": "plan_started", "plan": plan.name, "steps": [s.name for s in plan.steps]})
    error: BaseException | None = None
    for step in plan.steps:
        io = StepIO(step.name, transport, emit)
        emit({"event": "step_started", "step": step.name})
        t0 = time.monotonic()
        try:
            if check is not None:
                check()
            step.action(state, io)
        except BaseException as exc:  # noqa: BLE001 - re-raised after undo
            duration = time.monotonic() - t0
            results.append(StepResult(step.name, "failed", duration, io.notes, io.output,
                                      str(exc)))
            emit({"event": "step_failed", "step": step.name, "duration": duration,
                  "error": str(exc), "hint": getattr(exc, "hint", None),
                  "error_class": type(exc).__name__,
                  "exit_code": getattr(exc, "exit_code", 1)})
            error = exc
            break
        duration = time.monotonic() - t0
        result = StepResult(step.name, "ok", duration, io.notes, io.output)
        results.append(result)
        emit({"event": "step_finished", "step": step.name, "duration": duration,
              "notes": io.notes})
        done.append((step, io, result))

    if error is not None:
        for step, io, result in reversed(done):
            if step.undo is None:
                continue
            emit({"event": "undo_started", "step": step.name})
            t0 = time.monotonic()
            try:
                step.undo(state, io)
                result.status, result.error = "undone", None
            except Exception as exc:  # noqa: BLE001 - report every undo failure, go on
                result.status, result.error = "undo-failed", str(exc)
            emit({"event": "undo_finished", "step": step.name, "status": result.status,
                  "error": result.error, "duration": time.monotonic() - t0})
    outcome = PlanResult(plan.name, error is None, results, time.monotonic() - t_plan, error)
    emit({"event": "plan_finished", "plan": plan.name, "ok": outcome.ok,
          "duration": outcome.duration})
    if error is not None and raise_on_failure:
        if isinstance(error, ConveyorError):
            error.plan_result = outcome  # type: ignore[attr-defined]
        raise error
    return outcome
