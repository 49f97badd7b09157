"""The command line of ``conveyor migrate``: argparse parsers."""

from __future__ import annotations

import argparse
from typing import NoReturn

from conveyor.migrations.errors import UsageError

PROG = "conveyor migrate"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BLOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: printed by ``conveyor migrate --help`` (and each command's), as in docs/exit-codes.md
EXIT_CODES = (
    "Exit codes: 0 ok; 1 a migration failed, the lock timed out, drift was refused, the "
    "database is unreachable or a migration cannot be reverted; 2 usage, configuration or "
    "migration-directory error; 3 `status` or `plan` lists blocking problems (an applied "
    "migration edited or missing on disk: `run` would refuse); 130 interrupted."
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}.", f"See `{self.prog} --help`.")


def common_options() -> _Parser:
    """Options accepted before or after the sub-command (defaults are resolved later)."""
    p = _Parser(add_help=False)
    S = argparse.SUPPRESS
    p.add_argument("--database-url", metavar="URL", default=S,
                   help="PostgreSQL URL or libpq conninfo (default: $DATABASE_URL, else the "
                   "config's environment)")
    p.add_argument("--migration-dir", metavar="DIR", default=S,
                   help="the migrations directory (default: $MIGRATION_DIRECTORY, the config's, "
                   "else ./migrations)")
    p.add_argument("-C", "--project-dir", metavar="DIR", default=S,
                   help="the project directory (where conveyor.toml is)")
    p.add_argument("--env", metavar="ENV", default=S,
                   help="the config environment whose database to use (default: local)")
    p.add_argument("--lock-timeout", metavar="SECONDS", type=float, default=S,
                   help="how long to wait for another runner's migration lock (default: 60)")
    p.add_argument("--allow-drift", action="store_true", default=S,
                   help="run even if applied migrations were edited or are missing on disk")
    p.add_argument("--json", action="store_true", default=S,
                   help="machine-readable output (run, revert, redo, status, plan)")
    p.add_argument("-v", "--verbose", action="store_true", default=S,
                   help="show server notices and the row data in PostgreSQL's messages")
    return p


COMMANDS = {
    "run": "apply all pending migrations",
    "revert": "revert the last applied migration (or -n N, or --all)",
    "redo": "revert and re-apply the last migration (or -n N, or --all)",
    "status": "applied and pending migrations, and problems",
    "plan": "the pending migrations and their SQL, in order, without running them",
    "generate": "create <version>_<NAME>/up.sql and down.sql (Diesel's naming)",
    "lint": "flag destructive and locking migrations (see `lint --help`)",
}


def add_command_options(name: str, p: argparse.ArgumentParser) -> None:
    if name in ("revert", "redo"):
        verb = "revert" if name == "revert" else "redo"
        g = p.add_mutually_exclusive_group()
        g.add_argument("-n", "--number", type=int, default=1, metavar="N",
                       help=f"{verb} the last N migrations (default 1)")
        g.add_argument("-a", "--all", action="store_true", help=f"{verb} every applied migration")
    elif name == "generate":
        p.add_argument("name", metavar="NAME")
        p.add_argument("--version-style", choices=("diesel", "compact"), default="diesel",
                       help="diesel: 2026-11-26-140000-0000 (diesel_cli 2.x); "
                       "compact: 20261126140000")
        p.add_argument("--version", dest="explicit_version", metavar="VERSION", default=None,
                       help="use this version instead of the current UTC time")
        p.add_argument("-u", "--no-down", action="store_true", help="do not create down.sql")
        p.add_argument("--no-transaction", action="store_true",
                       help="write metadata.toml with run_in_transaction = false")


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of one sub-command (cheap: the start-up-critical path builds only this one),
    or, without ``command``, the full parser (for --help and usage errors)."""
    common = common_options()
    if command in COMMANDS and command != "lint":
        p = _Parser(prog=f"{PROG} {command}", parents=[common], description=COMMANDS[command],
                    epilog=EXIT_CODES)
        add_command_options(command, p)
        p.set_defaults(command=command)
        return p
    p = _Parser(
        prog=PROG, parents=[common],
        description="Diesel-compatible PostgreSQL migrations: migrations/<version>_<name>/"
        "{up.sql,down.sql,metadata.toml}, recorded in __diesel_schema_migrations.",
        epilog=EXIT_CODES,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, text in COMMANDS.items():
        sp = sub.add_parser(name, parents=[common] if name != "lint" else [],
                            add_help=name != "lint", help=text, description=text)
        if name != "lint":
            add_command_options(name, sp)
    return p


def subcommand(argv: list[str]) -> tuple[str | None, int]:
    """The sub-command word and its index, skipping the common options before it."""
    takes_value = {"--database-url", "--migration-dir", "-C", "--project-dir", "--env",
                   "--lock-timeout"}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return None, -1
        if a in takes_value:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a, i
    return None, -1
