"""The transport interface: `Result`, the `Transport` base class and `sh()` for one-round-trip
scripts built from quoted argvs."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Self

from conveyor.errors import ConveyorError

OutputSink = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    host: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# glue allowed between quoted argvs in `sh()`: fixed text only, never a user value
_SH_GLUE = frozenset({"&&", "&", "||", ";", "|", "{", "}", "(", ")", ">", ">>", ">/dev/null",
                      "2>/dev/null", "2>&1", "!", "then", "fi", "if", "else"})


def sh(*parts: Sequence[str] | str) -> tuple[str, str, str]:
    """`sh -c SCRIPT` for several commands in one round trip.

    Each argv in `parts` is quoted with `shlex.join` (every value one argument); strings are
    glue from a fixed set (`&&`, `||`, `;`, `>/dev/null`, ...). No user value is ever spliced
    into the script unquoted.
    """
    words: list[str] = []
    for part in parts:
        if isinstance(part, str):
            if part not in _SH_GLUE:
                raise ValueError(f"not allowed as shell glue: {part!r}")
            words.append(part)
        else:
            words.append(shlex.join([str(a) for a in part]))
    return ("sh", "-c", " ".join(words))


def timeout_error(cmd: Sequence[str], timeout: float | None) -> ConveyorError:
    """The error of a command that ran out of time (local or remote)."""
    return ConveyorError(f"timed out after {timeout:g} s: {shlex.join(cmd)}",
                         hint="raise the timeout, or check what the command waits for")


# writes stdin to "$1" with mode "$2", never world-readable first
_PUT = 'umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'


class Transport:
    """Base class. `name` is the host shown in messages ('local' for this machine)."""

    name = "local"

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None,
            timeout: float | None = None, check: bool = True, stream: OutputSink | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        raise NotImplementedError

    def put(self, data: bytes | str, path: str, mode: int = 0o600) -> None:
        """Write `data` to `path` on the host, created with `mode` (never world-readable first)."""
        self.run(["sh", "-c", _PUT, "put", path, f"{mode:o}"], input=data)

    def get(self, path: str) -> bytes:
        r = self.run(["cat", path])
        return r.stdout.encode()

    def connect(self) -> None:
        """Connect now (nothing for a transport without a connection)."""

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """An interactive command on the host: stdin, stdout and stderr are pipes."""
        return subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
