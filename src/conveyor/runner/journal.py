"""A run's journal on the host: one JSON event per line (`runs/<id>/journal.jsonl`), written
and flushed to disk as it happens, so that whoever comes next (the controller attaching, a
recovering runner, `conveyor status`) knows how far the run got. The plan's state is saved
with each `step_started` event, so a recovery undoes from the state as the step began."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from conveyor.state.deploy import DeployState, RevertPlan

JOURNAL = "journal.jsonl"
_NOT_SAVED = {"remote", "record", "finalize_results", "image"}


def run_dir(state_dir: str, run_id: str) -> str:
    return f"{state_dir}/runs/{run_id}"


def jobs_dir(state_dir: str) -> str:
    return f"{state_dir}/jobs"


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def write(self, event: dict[str, Any]) -> None:
        self._f.write(json.dumps(event, default=str) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def read(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash
    return out


def snapshot(st: DeployState) -> dict[str, Any]:
    """The plan's state as plain data (no secrets: the container inspect keeps no Env)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(st):
        if f.name in _NOT_SAVED:
            continue
        value = getattr(st, f.name)
        out[f.name] = value.as_dict() if isinstance(value, RevertPlan) else value
    return out


def restore(st: DeployState, data: dict[str, Any]) -> None:
    for name, value in data.items():
        if name in _NOT_SAVED or not hasattr(st, name):
            continue
        if name == "revert" and value:
            value = RevertPlan(**value)
        setattr(st, name, value)


def finished(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e.get("event") == "run_finished"), None)
