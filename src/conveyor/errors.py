"""Every error conveyor raises, in one table: one class per kind of failure, one exit code each.

Errors are raised low (in a step, the config loader, a transport) and rendered once by the CLI:
one paragraph, a hint, the exit code below, and a traceback only with `--verbose`. The table
`EXIT_CODES` is what `conveyor --help` and `docs/exit-codes.md` show; a test keeps the three in
step and the codes unique.
"""

from __future__ import annotations

import shlex
from typing import Any

# how much of a bad value a message shows
ECHO_LIMIT = 200


def echo(value: Any, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)`, cut to `limit` characters with an ellipsis and the full length."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters " \
        "as written"
    return f"{text[:limit]}… ({size})"


class ConveyorError(Exception):
    """Base class: `str()` is a complete, one-paragraph message; `hint` says how to fix it."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(ConveyorError):
    """conveyor.toml is missing, malformed, or does not fit the schema (or bad command input)."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 hint: str | None = None) -> None:
        self.file = file
        self.key = key
        where = []
        if file:
            where.append(file)
        if key:
            where.append(f"key `{key}`")
        prefix = f"{': '.join(where)}: " if where else ""
        super().__init__(prefix + message, hint=hint)


class DockerUnavailable(ConveyorError):
    """No Docker engine (or no Compose) answers on this machine."""

    exit_code = 3


class HostUnreachable(ConveyorError):
    """An environment's host cannot be reached over SSH."""

    exit_code = 4


class BuildFailed(ConveyorError):
    """Building the app image failed."""

    exit_code = 5


class ComposeFailed(ConveyorError):
    """`compose up` / `compose config` / `compose down` failed."""

    exit_code = 6


class DatabaseNotReady(ConveyorError):
    """The database did not accept connections in time."""

    exit_code = 7


class MigrationStepFailed(ConveyorError):
    """A migration failed (any stage); the engine's or the tool's message is kept."""

    exit_code = 8

    def __init__(self, message: str, *, cause: Exception | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cause = cause


class HealthCheckFailed(ConveyorError):
    """The app did not answer its health check in time."""

    exit_code = 9


class ValidationFailed(ConveyorError):
    """The HTTP checks or the validate_command failed after a prod deploy."""

    exit_code = 10


class NotPromotable(ConveyorError):
    """The image has not passed the environment it is promoted from."""

    exit_code = 11


class LintBlocked(ConveyorError):
    """The lint found destructive (or failing) statements in the pending migrations."""

    exit_code = 12


class BackupFailed(ConveyorError):
    """The database backup (pg_dump + verification) failed."""

    exit_code = 13


class RestoreFailed(ConveyorError):
    """Restoring a backup failed (the live database was kept or swapped back)."""

    exit_code = 14


class NoRollbackTarget(ConveyorError):
    """There is no previous version to roll back to."""

    exit_code = 15


class DatabaseAhead(ConveyorError):
    """The database has applied migrations the image to deploy does not have."""

    exit_code = 16


class ImageUnavailable(ConveyorError):
    """A base image or a service image cannot be pulled."""

    exit_code = 17


class LockHeld(ConveyorError):
    """Another deployment holds the environment's lock."""

    exit_code = 18

    def __init__(self, message: str, holder: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.holder = holder or {}


class TestsFailed(ConveyorError):
    """The environment's tests failed against the deployed app."""

    __test__ = False  # not a pytest test class
    exit_code = 19


class NotSetUp(ConveyorError):
    """The environment's host is not set up (database container missing or stopped)."""

    exit_code = 20


class HostKeyError(ConveyorError):
    """The host's SSH key is unknown or changed (never accepted silently)."""

    exit_code = 21


class CommandFailed(ConveyorError):
    """A command (local or remote) exited non-zero."""

    exit_code = 22

    def __init__(self, argv: tuple[str, ...] | list[str], exit_code: int, stderr: str = "",
                 host: str | None = None, hint: str | None = None) -> None:
        self.argv = tuple(argv)
        self.host = host
        self.returncode = exit_code
        self.stderr = stderr
        where = f" on {host}" if host else ""
        tail = stderr.strip().splitlines()[-10:]
        detail = ("\n" + "\n".join("  " + line for line in tail)) if tail else ""
        super().__init__(f"command failed{where} (exit {exit_code}): {shlex.join(self.argv)}"
                         f"{detail}", hint=hint)


class GitError(ConveyorError):
    """The project's git repository cannot tell the revision."""

    exit_code = 23


class InitRefused(ConveyorError):
    """`conveyor init` refused to write (a file exists, an unknown CI system)."""

    exit_code = 24


class CiRefused(ConveyorError):
    """`conveyor ci` will not start (before any stage ran)."""

    exit_code = 25


class Interrupted(ConveyorError):
    """Interrupted by Ctrl-C (the completed steps are undone, the deployment recorded)."""

    exit_code = 130


#: code -> (error class name, what it means). `conveyor ci` exits with its failing stage's code.
EXIT_CODES: dict[int, tuple[str, str]] = {0: ("", "success")}
for _cls in (ConveyorError, ConfigError, DockerUnavailable, HostUnreachable, BuildFailed,
             ComposeFailed, DatabaseNotReady, MigrationStepFailed, HealthCheckFailed,
             ValidationFailed, NotPromotable, LintBlocked, BackupFailed, RestoreFailed,
             NoRollbackTarget, DatabaseAhead, ImageUnavailable, LockHeld, TestsFailed, NotSetUp,
             HostKeyError, CommandFailed, GitError, InitRefused, CiRefused, Interrupted):
    assert _cls.exit_code not in EXIT_CODES, f"exit code {_cls.exit_code} used twice"
    EXIT_CODES[_cls.exit_code] = (_cls.__name__, (_cls.__doc__ or "").strip().splitlines()[0])
del _cls
EXIT_CODES[1] = ("ConveyorError", "any other failure")


def exit_codes_text() -> str:
    """The table as plain lines (the `conveyor --help` epilogue, docs/exit-codes.md)."""
    return "\n".join(f"{code:>3}  {text}" for code, (_, text) in sorted(EXIT_CODES.items()))
