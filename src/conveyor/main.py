"""Console entry point.

`conveyor migrate ...` is dispatched before Typer, rich and pydantic are imported: a no-op
`migrate run` has to start in well under 0.15 s, and those imports alone cost more than that.
Every other command goes through the Typer application in `conveyor.cli`.
"""

from __future__ import annotations

import sys


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
    argv = list(sys.argv[1:] if argv is None else argv)
    idx = _command_index(argv)
    if idx is not None and argv[idx] == "migrate":
        from conveyor.migrations.cli import main as migrate_main

        # global options placed before `migrate` (e.g. `-C DIR`) are passed on after it
        if {"-h", "--help"} & set(argv[idx + 1:]):  # the help in the style of the rest
            from conveyor.cli.app import migrate_help

            raise SystemExit(migrate_help(argv[:idx] + argv[idx + 1:]))
        raise SystemExit(migrate_main(argv[:idx] + argv[idx + 1 :], exiting=True))
    if idx is not None and argv[idx] == "status":
        # each remote environment's one round trip starts before the CLI is imported
        from conveyor.remote_status import start_early

        start_early(argv[:idx] + argv[idx + 1:])
    from conveyor.cli import run

    run(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
