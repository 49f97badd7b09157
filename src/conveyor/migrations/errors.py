"""Typed errors of the migration engine.

Every error renders (``str()``) as one paragraph that says what went wrong, where, and how to fix
it, so the CLI prints it as is, without a traceback; secrets are masked by
:func:`conveyor.masking.mask_secrets` (re-exported here), and row contents quoted by
PostgreSQL (DETAIL: "Failing row contains (...)", "Key (x)=(...)") by
:func:`conveyor.masking.mask_row_data` unless rendered with ``verbose=True`` (``--verbose``).
Nothing here imports psycopg.
"""

from __future__ import annotations

from conveyor.masking import mask_row_data, mask_secrets

__all__ = [
    "ConnectionFailed",
    "DiscoveryError",
    "DriftError",
    "LockTimeout",
    "MigrationError",
    "MigrationFailed",
    "NotRevertible",
    "UsageError",
    "mask_secrets",
]


class MigrationError(Exception):
    """Base class of every error raised by ``conveyor.migrations``."""

    #: process exit code the CLI uses for this error
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.render()

    def text(self) -> str:
        """The paragraph, unmasked."""
        if not self.hint:
            return self.message
        stop = "" if self.message.rstrip().endswith((".", "!", "?", ":")) else "."
        return self.message.rstrip() + stop + " " + self.hint

    def render(self, verbose: bool = False) -> str:
        """The paragraph, secrets masked, and row data too unless ``verbose``."""
        return _masked(self.text(), verbose)

    def to_dict(self, verbose: bool = False) -> dict:
        return {"error": type(self).__name__, "message": self.render(verbose)}


def _masked(text: str, verbose: bool) -> str:
    text = mask_secrets(text)
    return text if verbose else mask_row_data(text)


class DiscoveryError(MigrationError):
    """The migration directory cannot be read as Diesel's layout."""

    exit_code = 2

    def __init__(self, message: str, path: object = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.path = path


class UsageError(MigrationError):
    """Bad arguments or configuration (exit code 2)."""

    exit_code = 2


class ConnectionFailed(MigrationError):
    """The database cannot be reached."""

    exit_code = 1


class MigrationFailed(MigrationError):
    """A migration's SQL failed in PostgreSQL."""

    def __init__(
        self,
        version: str,
        name: str,
        file: str,
        line: int | None,
        column: int | None,
        message: str,
        hint: str | None = None,
        statement: str | None = None,
        *,
        detail: str | None = None,
        sqlstate: str | None = None,
        direction: str = "up",
        rolled_back: bool = True,
        position: int | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.version = version
        self.name = name
        self.file = file
        self.line = line
        self.column = column
        self.statement = statement
        self.detail = detail
        self.sqlstate = sqlstate
        self.direction = direction
        self.rolled_back = rolled_back
        self.position = position
        #: migrations (engine.StepResult) that completed in the same command before this one
        self.completed: list = []

    @property
    def location(self) -> str:
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def text(self) -> str:
        verb = "applying" if self.direction == "up" else "reverting"
        parts = [(f"Migration {self.name} (version {self.version}) failed while {verb} it, at "
                  f"{self.location}: {self.message.rstrip('.')}.")]
        if self.sqlstate:
            parts[-1] = parts[-1][:-1] + f" [SQLSTATE {self.sqlstate}]."
        if self.detail:
            parts.append(f"Detail: {self.detail.rstrip('.')}.")
        if self.hint:
            parts.append(f"Hint: {self.hint.rstrip('.')}.")
        if self.statement:
            stmt = " ".join(self.statement.split())
            if len(stmt) > 200:
                stmt = stmt[:197] + "..."
            parts.append(f"Failing statement: {stmt}")
        if self.rolled_back:
            parts.append("The migration ran in a transaction, which was rolled back: the database "
                         "is as it was before it. Fix the SQL and run again.")
        else:
            parts.append("The migration has run_in_transaction = false: statements before the "
                         "failing one may have been committed; check the database before re-running.")
        return " ".join(parts)

    def to_dict(self, verbose: bool = False) -> dict:
        return {
            "error": "MigrationFailed",
            "version": self.version,
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "position": self.position,
            "message": _masked(self.message, verbose),
            "detail": None if self.detail is None else _masked(self.detail, verbose),
            "hint": self.hint,
            "sqlstate": self.sqlstate,
            "statement": self.statement,
            "direction": self.direction,
            "rolled_back": self.rolled_back,
            "text": self.render(verbose),
        }


class NotRevertible(MigrationError):
    """A migration to revert has no down.sql (or an empty one), or is missing on disk."""


class LockTimeout(MigrationError):
    """Another runner held the advisory lock for longer than the timeout."""

    def __init__(self, key: int, timeout: float, holders: list[dict] | None = None) -> None:
        self.key = key
        self.timeout = timeout
        self.holders = holders or []
        who = "; ".join(
            f"pid {h.get('pid')} ({h.get('usename') or '?'}@{h.get('client_addr') or 'local'}, "
            f"application {h.get('application_name') or '?'!r}, since {h.get('backend_start')}, "
            f"state {h.get('state') or '?'})"
            for h in self.holders
        ) or "unknown (pg_locks showed no holder; it may just have been released)"
        super().__init__(
            f"Timed out after {timeout:g} s waiting for the migration lock (PostgreSQL advisory "
            f"lock key {key}, i.e. pg_advisory_lock({key})); it is held by {who}.",
            "Another `conveyor migrate` (or a stuck session) is migrating this database: wait for "
            "it, raise --lock-timeout, or end the holder with pg_terminate_backend(pid) if it is "
            "stuck.",
        )

    def to_dict(self, verbose: bool = False) -> dict:
        return {"error": "LockTimeout", "key": self.key, "timeout": self.timeout,
                "holders": self.holders, "message": self.render(verbose)}


class DriftError(MigrationError):
    """Applied migrations differ from the files on disk."""

    def __init__(self, problems: list) -> None:
        self.problems = list(problems)
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(
            f"Refusing to run: the database and the migration directory have drifted: {lines}.",
            "Restore the original files (e.g. from git), or re-run with --allow-drift if the "
            "difference is intended.",
        )

    def to_dict(self, verbose: bool = False) -> dict:
        return {"error": "DriftError", "message": self.render(verbose),
                "problems": [p.to_dict() if hasattr(p, "to_dict") else str(p)
                             for p in self.problems]}
