"""Typed errors, raised low and rendered once by the CLI (one paragraph, a hint, an exit code)."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class: `str()` is a complete, one-paragraph message; `hint` says how to fix it."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(ConveyorError):
    """conveyor.toml is missing, malformed, or does not fit the schema."""

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


class NotImplementedYet(ConveyorError):
    exit_code = 2


class DockerUnavailable(ConveyorError):
    exit_code = 3


class CommandFailed(ConveyorError):
    """A command (local or remote) exited non-zero."""

    def __init__(self, argv: tuple[str, ...] | list[str], exit_code: int, stderr: str = "",
                 host: str | None = None, hint: str | None = None) -> None:
        import shlex

        self.argv = tuple(argv)
        self.host = host
        self.returncode = exit_code
        self.stderr = stderr
        where = f" on {host}" if host else ""
        tail = stderr.strip().splitlines()[-10:]
        detail = ("\n" + "\n".join("  " + line for line in tail)) if tail else ""
        super().__init__(f"command failed{where} (exit {exit_code}): {shlex.join(self.argv)}{detail}",
                         hint=hint)
