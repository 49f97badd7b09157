"""An environment's SSH connection, opened before the rest of conveyor is imported.

`conveyor deploy ENV` (and `status`, `rollback`, `logs`, `rehearse`, `backup`, `restore`,
`setup`) spends its first few hundred milliseconds importing the CLI (Typer, rich, pydantic)
and validating conveyor.toml before it sends a byte to the host, and the SSH handshake (0.3 to
0.4 s on the test bed) then waits for that. `start`, called by `conveyor.main` with the
command line, reads only what the connection needs from conveyor.toml (the environment's
`host`, `known_hosts` and `ssh_key`, with their `${VAR}`s) using the standard library, and
starts the master connection in the background exactly as `SshTransport` would make it: the
same options, the host key checked against the same known_hosts file. The first `SshTransport`
made for the same target and timeout takes it over (`take`) instead of connecting again.

Best effort: an option it does not know, no conveyor.toml, an environment that is not remote,
a value it cannot read, and nothing starts: the command then connects as it always does and
reports any problem itself. A connection that fails here is reported by the transport that
takes it, with the same error as its own connection would give. A master nobody took (the
command failed before it needed the host) is closed when the process exits; a killed process
leaves it for ControlPersist's 30 idle seconds at most.
"""

from __future__ import annotations

import atexit
import threading
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.transport.ssh import SshTarget, SshTransport

from conveyor.main import PREWARM_COMMANDS

# the commands that take one environment (the word after the command) and reach its host
ONE_ENVIRONMENT = PREWARM_COMMANDS - {"status"}
# options after which the command does not connect (or does something else)
_NOT_CONNECTING = frozenset({"-h", "--help", "--dry-run"})
# `status ENV...`: the options it may be given besides the environments
_STATUS_FLAGS = frozenset({"--json", "-v", "--verbose"})
CONNECT_TIMEOUT = 10.0  # SshTransport's default

_WARM: dict[tuple[Any, ...], SshTransport] = {}
_LOCK = threading.RLock()  # SshTransport() itself calls take()


def _key(target: SshTarget, connect_timeout: float) -> tuple[Any, ...]:
    return (target.host, target.user, target.port, target.known_hosts, target.identity,
            tuple(sorted(target.env.items())), target.env_name, float(connect_timeout))


def environments(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The project directory and the environments whose hosts `conveyor ARGV` will reach
    (none when it is not sure)."""
    project, words, i = ".", [], 0
    while i < len(argv):
        word = argv[i]
        if word in ("-C", "--project-dir") and i + 1 < len(argv):
            project, i = argv[i + 1], i + 2
            continue
        if word.startswith("--project-dir="):
            project = word.split("=", 1)[1]
        elif word in _NOT_CONNECTING:
            return project, []
        words.append(word)
        i += 1
    cmd = next((n for n, w in enumerate(words) if not w.startswith("-")), None)
    if cmd is None:
        return project, []
    command, rest = words[cmd], words[cmd + 1:]
    if command == "status":
        if any(w.startswith("-") and w not in _STATUS_FLAGS for w in rest):
            return project, []
        return project, list(dict.fromkeys(w for w in rest if not w.startswith("-")))
    if command in ONE_ENVIRONMENT and rest and not rest[0].startswith("-"):
        return project, [rest[0]]
    return project, []


def target_of(project: str, env_name: str) -> SshTarget | None:
    """The SSH target of environment `env_name` in PROJECT/conveyor.toml, read without
    validating the rest (None: not remote, or not readable here)."""
    from conveyor.errors import ConveyorError
    from conveyor.interpolation import interpolate
    from conveyor.transport.ssh import SshTarget

    base = Path(project).expanduser()
    path = base if base.is_file() else base / "conveyor.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        env = raw["environments"][env_name]
        fields = {k: env.get(k) for k in ("host", "known_hosts", "ssh_key")}
        if not isinstance(fields["host"], str) or not isinstance(fields["known_hosts"], str):
            return None
        if fields["ssh_key"] is not None and not isinstance(fields["ssh_key"], str):
            return None
        values = interpolate(fields, f"environments.{env_name}", str(path))
        return SshTarget.of_environment(values["host"], values["known_hosts"],
                                        values["ssh_key"], path.resolve().parent, env_name)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError,
            ValueError, AttributeError, ConveyorError):
        return None


def start(argv: Sequence[str]) -> list[str]:
    """Start the master connection of each environment `conveyor ARGV` will reach; the names
    of those started."""
    from conveyor.errors import ConveyorError
    from conveyor.transport.ssh import SshTransport

    project, names = environments(argv)
    started = []
    for name in names:
        target = target_of(project, name)
        if target is None:
            continue
        key = _key(target, CONNECT_TIMEOUT)
        with _LOCK:
            if key in _WARM:
                continue
            try:
                transport = SshTransport(target, connect_timeout=CONNECT_TIMEOUT)
                transport.start_master()
            except (OSError, ValueError, ConveyorError):  # e.g. no ssh on PATH: the command
                continue                                     # says so itself
            if not _WARM:
                atexit.register(close_all)
            _WARM[key] = transport
        started.append(name)
    return started


def take(target: SshTarget, connect_timeout: float) -> SshTransport | None:
    """The transport `start` made for exactly this target and timeout, once."""
    if not _WARM:
        return None
    with _LOCK:
        return _WARM.pop(_key(target, connect_timeout), None)


def close_all() -> None:
    """Close every master nobody took (at exit)."""
    with _LOCK:
        left = list(_WARM.values())
        _WARM.clear()
    for transport in left:
        transport.close()
