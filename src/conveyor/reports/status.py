"""`conveyor status`'s exit code, from the problems each environment's status lists.

Each problem is `{"code": exit code, "text": one line}`. The codes are conveyor's own
(`conveyor.errors`, docs/exit-codes.md); with several environments the worst one wins, in this
order: the status could not be read at all (that error's own code: 2 a secret is not set, 4 the
host cannot be reached, 21 its host key is refused, ...), the database not running (20 on a
host, 7 locally), the app not running or unhealthy (9), blocking migration problems (8).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conveyor.errors import (
    DatabaseNotReady,
    HealthCheckFailed,
    MigrationStepFailed,
    NotSetUp,
)

DB_DOWN_REMOTE = NotSetUp.exit_code  # 20
DB_DOWN_LOCAL = DatabaseNotReady.exit_code  # 7
UNHEALTHY = HealthCheckFailed.exit_code  # 9
DRIFT = MigrationStepFailed.exit_code  # 8
_RANK = {0: 0, DRIFT: 1, UNHEALTHY: 2, DB_DOWN_LOCAL: 3, DB_DOWN_REMOTE: 3}
_READ_ERROR = 4  # any other code: the status could not be read


def worst_code(problems: Iterable[dict[str, Any]]) -> int:
    """The exit code of one status's problems (or of several statuses' problems together)."""
    codes = [int(p["code"]) for p in problems] or [0]
    return max(codes, key=lambda c: (_RANK.get(c, _READ_ERROR), c))


def blocking(problem: dict[str, Any]) -> bool:
    """A migration problem that makes `run` refuse: an applied migration edited or missing."""
    if "blocking" in problem:
        return bool(problem["blocking"])
    return problem.get("kind") in ("edited", "missing")
