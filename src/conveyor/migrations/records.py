"""What the engine reports: the status of a database against a migration directory
(:class:`Status`, :class:`AppliedRow`, :class:`Problem`) and what a command did
(:class:`RunResult`, :class:`StepResult`), each with a stable ``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:

    from conveyor.migrations.discovery import Migration
    from conveyor.migrations.queries import AppliedLine

#: problems that make ``run`` refuse (unless ``allow_drift``)
BLOCKING_PROBLEMS = ("edited", "missing")


@dataclass
class Problem:
    """Something the status of a database and a migration directory should tell.

    kind: ``edited`` | ``missing`` (both block ``run`` unless allowed) | ``unrecorded`` |
    ``out_of_order``.
    """

    kind: str
    version: str
    name: str | None
    message: str

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_PROBLEMS

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "version": self.version, "name": self.name,
                "blocking": self.blocking, "message": self.message}


@dataclass
class AppliedRow:
    """One row of Diesel's table, joined with conveyor's checksum row and the file on disk."""

    version: str
    #: Diesel's ``run_on`` (UTC, without a zone in the table), ISO 8601
    run_on: str | None
    name: str | None = None
    recorded_checksum: str | None = None
    applied_at: str | None = None
    duration_ms: float | None = None
    applied_by: str | None = None
    source: str | None = None
    migration: Migration | None = None

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


@dataclass
class Status:
    """applied: ascending by version; pending: in the order ``run`` would apply them."""

    applied: list[AppliedRow]
    pending: list[Migration]
    problems: list[Problem]
    tables_exist: bool = True

    @property
    def blocking_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.blocking]

    def to_dict(self) -> dict:
        return {
            "applied": [a.to_dict() for a in self.applied],
            "pending": [migration_dict(m) for m in self.pending],
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass
class StepResult:
    """One migration applied (direction ``up``) or reverted (``down``)."""

    version: str
    name: str
    direction: str
    duration_ms: float | None

    def to_dict(self) -> dict:
        return {"version": self.version, "name": self.name, "direction": self.direction,
                "duration_ms": self.duration_ms}


@dataclass
class RunResult:
    """What ``run``, ``revert`` or ``redo`` did, in order."""

    steps: list[StepResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: versions whose checksum was recorded on first sight (applied by another tool)
    adopted: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

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
