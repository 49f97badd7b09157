"""Small helpers shared by the local steps: output tails for messages, and the JSON cache
files (`compose config` results, the containers `up` started)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from conveyor.transport import Result

TESTBED_WAY_OUT = 'scripts/testbed up && eval "$(scripts/testbed env)"'


class Run(Protocol):
    """Runs one argv, not streamed: a step's `io.run` or a transport's `run`."""

    def __call__(self, argv: Sequence[str], *, check: bool = ...,
                 timeout: float | None = ...) -> Result: ...


def tail(text: str, n: int, indent: str = "") -> str:
    """The last `n` non-blank lines of `text`."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(indent + ln for ln in lines[-n:])


def read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: losing it only costs time
