"""Console entry point.

`conveyor migrate ...` is dispatched before Typer, rich and pydantic are imported: a no-op
`migrate run` has to start in well under 0.15 s, and those imports alone cost more than that.
Every other command goes through the Typer application in `conveyor.cli`; for those that reach
an environment's host, its SSH connection is opened first (`conveyor.transport.prewarm`), while
the rest is imported.

As the console script (no `argv` given), the process ends as soon as the command has: the exit
handlers run and the output is flushed, then `os._exit`, without the interpreter's tear-down of
every module (0.1 to 0.2 s after a remote command).
"""

from __future__ import annotations

import atexit
import os
import sys

# the commands whose hosts are connected to before the CLI is imported: `status ENV...`, and
# these others with the environment as the word after the command
PREWARM_COMMANDS = frozenset({"status", "deploy", "rollback", "logs", "rehearse", "backup",
                              "restore", "setup"})


def _command_index(argv: list[str]) -> int | None:
    """Index of the first sub-command word, skipping global `-C DIR` / `--project-dir DIR`."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-C", "--project-dir"):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return i
    return None


def main(argv: list[str] | None = None) -> None:
    if argv is not None:
        _main(list(argv))
        return
    try:
        _main(sys.argv[1:])
    except SystemExit as exc:
        _exit_now(exc.code)
    _exit_now(0)


def _exit_now(code: object) -> None:
    """End the process with `code` (as SystemExit's), its exit handlers run first."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            status = status or 120
    os._exit(status)


def _main(argv: list[str]) -> None:
    idx = _command_index(argv)
    if idx is not None and argv[idx] == "migrate":
        from conveyor.migrations.cli import main as migrate_main

        # global options placed before `migrate` (e.g. `-C DIR`) are passed on after it
        if {"-h", "--help"} & set(argv[idx + 1:]):  # the help in the style of the rest
            from conveyor.cli.app import migrate_help

            raise SystemExit(migrate_help(argv[:idx] + argv[idx + 1:]))
        raise SystemExit(migrate_main(argv[:idx] + argv[idx + 1 :], exiting=True))
    if idx is not None and argv[idx] in PREWARM_COMMANDS:
        # the host's SSH connection is made while the rest is imported (best effort)
        from conveyor.transport import prewarm

        prewarm.start(argv)
    if idx is not None and argv[idx] == "status":
        # each remote environment's one round trip starts before the CLI is imported
        from conveyor.remote_status import start_early

        start_early(argv)
    from conveyor.cli import run

    run(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
