"""What the engine reports: the status of a database against a migration directory
(:class:`Status`, :class:`AppliedRow`, :class:`Problem`) and what a command did
(:class:`RunResult`, :class:`StepResult`), each with a stable ``to_dict()``.

Plain typed classes with ``__slots__``, written out: ``dataclasses`` is not imported because its
import alone (it pulls in ``inspect``) costs a good part of a no-op ``conveyor migrate run``.
:class:`_Value` gives them equality and a repr over their slots.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Sequence

    from conveyor.migrations.discovery import Migration
    from conveyor.migrations.queries import AppliedLine

#: problems that make ``run`` refuse (unless ``allow_drift``)
BLOCKING_PROBLEMS = ("edited", "missing")


class _Value:
    """Equality and repr over ``__slots__`` (values, not identities); unhashable."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Problem(_Value):
    """Something the status of a database and a migration directory should tell.

    kind: ``edited`` | ``missing`` (both block ``run`` unless allowed) | ``unrecorded`` |
    ``out_of_order``.
    """

    __slots__ = ("kind", "version", "name", "message")  # noqa: RUF023 - the repr's order

    def __init__(self, kind: str, version: str, name: str | None, message: str) -> None:
        self.kind = kind
        self.version = version
        self.name = name
        self.message = message

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_PROBLEMS

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "version": self.version, "name": self.name,
                "blocking": self.blocking, "message": self.message}


class AppliedRow(_Value):
    """One row of Diesel's table, joined with conveyor's checksum row and the file on disk."""

    __slots__ = ("version", "run_on", "name", "recorded_checksum",  # noqa: RUF023 - repr order
                 "applied_at", "duration_ms", "applied_by", "source", "migration")

    def __init__(self, version: str, run_on: str | None, name: str | None = None,
                 recorded_checksum: str | None = None, applied_at: str | None = None,
                 duration_ms: float | None = None, applied_by: str | None = None,
                 source: str | None = None, migration: Migration | None = None) -> None:
        self.version = version
        self.run_on = run_on
        self.name = name
        self.recorded_checksum = recorded_checksum
        self.applied_at = applied_at
        self.duration_ms = duration_ms
        self.applied_by = applied_by
        self.source = source
        self.migration = migration

    @property
    def state(self) -> str:
        if self.migration is None:
            return "missing"
        if self.recorded_checksum is None:
            return "unrecorded"
        if self.recorded_checksum != self.migration.checksum:
            return "edited"
        return "applied"

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "name": self.migration.name if self.migration else self.name,
            "state": self.state,
            "run_on": self.run_on,
            "applied_at": self.applied_at,
            "duration_ms": self.duration_ms,
            "applied_by": self.applied_by,
            "recorded_checksum": self.recorded_checksum,
            "checksum": self.migration.checksum if self.migration else None,
        }


class Status(_Value):
    """applied: ascending by version; pending: in the order ``run`` would apply them."""

    __slots__ = ("applied", "pending", "problems", "tables_exist")

    def __init__(self, applied: list[AppliedRow], pending: list[Migration],
                 problems: list[Problem], tables_exist: bool = True) -> None:
        self.applied = applied
        self.pending = pending
        self.problems = problems
        self.tables_exist = tables_exist

    @property
    def blocking_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.blocking]

    def to_dict(self) -> dict:
        return {
            "applied": [a.to_dict() for a in self.applied],
            "pending": [migration_dict(m) for m in self.pending],
            "problems": [p.to_dict() for p in self.problems],
        }


class StepResult(_Value):
    """One migration applied (direction ``up``) or reverted (``down``)."""

    __slots__ = ("version", "name", "direction", "duration_ms")  # noqa: RUF023 - the repr's order

    def __init__(self, version: str, name: str, direction: str,
                 duration_ms: float | None) -> None:
        self.version = version
        self.name = name
        self.direction = direction
        self.duration_ms = duration_ms

    def to_dict(self) -> dict:
        return {"version": self.version, "name": self.name, "direction": self.direction,
                "duration_ms": self.duration_ms}


class RunResult(_Value):
    """What ``run``, ``revert`` or ``redo`` did, in order."""

    __slots__ = ("steps", "problems", "adopted", "duration_ms")  # noqa: RUF023 - the repr's order

    def __init__(self, steps: list[StepResult] | None = None,
                 problems: list[Problem] | None = None, adopted: list[str] | None = None,
                 duration_ms: float = 0.0) -> None:
        self.steps: list[StepResult] = steps if steps is not None else []
        self.problems: list[Problem] = problems if problems is not None else []
        #: versions whose checksum was recorded on first sight (applied by another tool)
        self.adopted: list[str] = adopted if adopted is not None else []
        self.duration_ms = duration_ms

    @property
    def applied(self) -> list[StepResult]:
        return [s for s in self.steps if s.direction == "up"]

    @property
    def reverted(self) -> list[StepResult]:
        return [s for s in self.steps if s.direction == "down"]

    def to_dict(self) -> dict:
        return {
            "applied": [s.to_dict() for s in self.applied],
            "reverted": [s.to_dict() for s in self.reverted],
            "adopted_checksums": self.adopted,
            "problems": [p.to_dict() for p in self.problems],
            "duration_ms": round(self.duration_ms, 3),
        }


def migration_dict(m: Migration) -> dict:
    return {"version": m.version, "name": m.name, "directory": str(m.directory),
            "run_in_transaction": m.run_in_transaction, "checksum": m.checksum,
            "up_sql": m.up_sql}


def newest_applied(status: Status, n: int | None, all: bool) -> list[AppliedRow]:
    """The applied migrations to revert: the newest ``n`` (Diesel: by version, descending)."""
    targets = list(reversed(status.applied))
    return targets if all else targets[: max(0, n or 0)]


def build_status(migrations: Sequence[Migration], rows: Sequence[AppliedLine]) -> Status:
    """Compare the migrations on disk with the applied rows (from :mod:`queries`)."""
    by_version = {m.version: m for m in migrations}
    applied: list[AppliedRow] = []
    problems: list[Problem] = []
    applied_versions = set()
    for r in rows:
        if not r.in_diesel:
            continue  # stale checksum row: its Diesel row was deleted (diesel_cli revert)
        applied_versions.add(r.version)
        applied.append(AppliedRow(
            version=r.version, run_on=r.run_on, name=r.name, recorded_checksum=r.checksum,
            applied_at=r.applied_at,
            duration_ms=float(r.duration_ms) if r.duration_ms else None,
            applied_by=r.applied_by, source=r.source, migration=by_version.get(r.version),
        ))
    applied.sort(key=lambda a: a.version)
    for a in applied:
        problem = _applied_problem(a)
        if problem is not None:
            problems.append(problem)
    pending = [m for m in migrations if m.version not in applied_versions]
    latest = max(applied_versions) if applied_versions else None
    for m in pending:
        if latest is not None and m.version < latest:
            problems.append(Problem(
                "out_of_order", m.version, m.name,
                f"{m.name} is pending but older than the latest applied version {latest}; it "
                "will be applied anyway (as Diesel does), after the newer ones",
            ))
    return Status(applied=applied, pending=pending, problems=problems)


def _applied_problem(a: AppliedRow) -> Problem | None:
    state = a.state
    m = a.migration
    if m is None:  # state "missing"
        return Problem(
            "missing", a.version, a.name,
            f"version {a.version}{' (' + a.name + ')' if a.name else ''} is applied in the "
            "database but no migration directory gives it (deleted or renamed, or this "
            "checkout is older than the database)",
        )
    if state == "edited":
        recorded = a.recorded_checksum or ""
        return Problem(
            "edited", a.version, m.name,
            f"{m.up_path} was edited after it was applied (sha256 recorded "
            f"{recorded[:12]}..., now {m.checksum[:12]}...)",
        )
    if state == "unrecorded":
        return Problem(
            "unrecorded", a.version, m.name,
            f"{m.name} was applied without conveyor (e.g. by diesel_cli): no checksum is "
            "recorded yet; the next `conveyor migrate run` records the current up.sql's",
        )
    return None
