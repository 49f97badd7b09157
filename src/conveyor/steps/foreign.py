"""A project's own migration tool (`migrations.command`, and the optional `status_command`,
`sql_command`, `revert_command`): run in a temporary container of the app image, in every
stage, with errors that name the command, its exit code and the last lines of its output.

conveyor does not know what such a tool applied: the tool decides what is pending, and
conveyor says so instead of reporting its own engine's view ("0 applied") of a database it did
not migrate. A command that runs past `migrations.timeout` is stopped and its container (and,
on a host, its env file) removed: nothing is left half-done on the machine.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.commands import docker
from conveyor.errors import ConveyorError, MigrationStepFailed

#: how many of the command's last output lines an error quotes
OUTPUT_LINES = 20

#: what conveyor cannot tell about a database that a foreign tool migrates
CANNOT_TELL = ("conveyor cannot tell which migrations are applied or pending, nor whether "
               "an applied one was edited (drift): the tool keeps that in its own table")


def shown(command: Sequence[str]) -> str:
    return shlex.join(command)


def managed_by(mcfg: Any) -> str:
    """One line: the tool manages the migrations (and what conveyor cannot tell)."""
    return (f"the project's migration tool manages the migrations (`{shown(mcfg.command)}`); "
            + (f"its status: `{shown(mcfg.status_command)}`" if mcfg.status_command else
               CANNOT_TELL + " (set migrations.status_command to show the tool's status)"))


def exit_meaning(rc: int) -> str:
    """The exit code, explained when Docker gives it a meaning."""
    if rc == 127:
        return "exit 127: the command is not in the image (not found on its PATH)"
    if rc == 126:
        return "exit 126: the command cannot be executed in the image"
    if rc == 125:
        return "exit 125: docker could not run the container"
    if rc > 128:
        return f"exit {rc}: killed by signal {rc - 128}"
    return f"exit {rc}"


def last_lines(lines: Sequence[str], n: int = OUTPUT_LINES) -> str:
    kept = [ln for ln in lines if ln.strip()][-n:]
    if not kept:
        return "  (no output)"
    return "\n".join(f"  {ln}" for ln in kept)


@dataclass
class Outcome:
    """How a tool's command ended: its exit code (None: timed out) and its output lines."""

    returncode: int | None
    lines: list[str] = field(default_factory=list)
    stdout: str = ""  # the standard output alone (e.g. the SQL of `sql_command`)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def failure(what: str, command: Sequence[str], outcome: Outcome, *, where: str,
            timeout: float, hint: str | None) -> MigrationStepFailed:
    """The error of a tool's command that failed or ran out of time."""
    if outcome.returncode is None:
        head = (f"{what} `{shown(command)}` did not finish on {where} within "
                f"migrations.timeout ({timeout:g} s): it was stopped and its temporary "
                "container removed")
    else:
        head = f"{what} `{shown(command)}` failed on {where} ({exit_meaning(outcome.returncode)})"
    return MigrationStepFailed(f"{head}; the last lines of its output:\n"
                               f"{last_lines(outcome.lines)}", hint=hint)


Runner = Callable[..., Any]  # a transport's run (argv, *, input, stream, check, timeout)


def run_tool(run: Runner, argv: Sequence[str], *, timeout: float, log: Callable[[str], None],
             input: bytes | None = None, cleanup: Sequence[Sequence[str]] = ()) -> Outcome:
    """Run a tool's container, streaming its output to `log`. On a timeout the process is
    killed, then each `cleanup` argv runs (remove the container, the env file)."""
    lines: list[str] = []

    def sink(line: str) -> None:
        lines.append(line)
        log(line)

    try:
        r = run(argv, input=input, stream=sink, check=False, timeout=timeout)
    except ConveyorError as exc:
        if not str(exc).startswith("timed out"):
            raise
        for c in cleanup:
            try:
                run(c, check=False, timeout=120)
            except ConveyorError:
                pass
        return Outcome(None, lines)
    if not lines:  # a transport that did not stream
        lines = (r.stdout + r.stderr).splitlines()
    elif r.stderr and not any(ln in lines for ln in r.stderr.splitlines()):
        lines += r.stderr.splitlines()
    return Outcome(r.returncode, lines, r.stdout)


def remove_container_argv(name: str) -> tuple[str, ...]:
    return ("docker", "rm", "--force", name)


def tool_argv(image: str, command: Sequence[str], *, name: str, network: str | None,
              labels: dict[str, str], env_file: str | None = None,
              env_names: Sequence[str] = ()) -> tuple[str, ...]:
    """A tool's command in a temporary container of the app image (values never in argv)."""
    return docker.run(image, name=name, rm=True, network=network, env_file=env_file,
                      env_names=env_names, labels=labels, command=tuple(command))
