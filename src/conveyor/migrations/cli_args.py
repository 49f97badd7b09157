"""The command line of ``conveyor migrate``: argparse parsers (built only for the command being
run) and a fast path that parses ``run``/``status``/``plan`` without importing argparse."""

from __future__ import annotations

from conveyor.migrations.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse is imported only when the fast path cannot parse the arguments
    import argparse

PROG = "conveyor migrate"


def parser_class():
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str):
            raise UsageError(f"{self.prog}: {message}.", f"See `{self.prog} --help`.")

    return _Parser


def common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the sub-command (defaults are resolved later)."""
    import argparse

    p = argparse.ArgumentParser(add_help=False)
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
                   help="show tracebacks and server notices")
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
    _Parser = parser_class()
    common = common_options()
    if command in COMMANDS and command != "lint":
        p = _Parser(prog=f"{PROG} {command}", parents=[common], description=COMMANDS[command])
        add_command_options(command, p)
        p.set_defaults(command=command)
        return p
    p = _Parser(
        prog=PROG, parents=[common],
        description="Diesel-compatible PostgreSQL migrations: migrations/<version>_<name>/"
        "{up.sql,down.sql,metadata.toml}, recorded in __diesel_schema_migrations.",
        epilog="Exit codes: 0 ok; 1 migration failed, lock timeout, drift refused, database "
        "unreachable; 2 usage, configuration or migration-directory error.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, text in COMMANDS.items():
        sp = sub.add_parser(name, parents=[common] if name != "lint" else [],
                            add_help=name != "lint", help=text, description=text)
        if name != "lint":
            add_command_options(name, sp)
    return p


class FastArgs:
    """What the fast path parses into (an ``argparse.Namespace`` look-alike)."""

    command: str


#: option -> (attribute, takes a value); the common options only
FAST_OPTIONS = {
    "--database-url": ("database_url", True),
    "--migration-dir": ("migration_dir", True),
    "-C": ("project_dir", True),
    "--project-dir": ("project_dir", True),
    "--env": ("env", True),
    "--lock-timeout": ("lock_timeout", True),
    "--allow-drift": ("allow_drift", False),
    "--json": ("json", False),
    "-v": ("verbose", False),
    "--verbose": ("verbose", False),
}


def fast_parse(command: str, argv: list[str]) -> FastArgs | None:
    """``run``, ``status`` and ``plan`` with only the common options, spelled out in full,
    parsed without importing argparse (~10 ms of start-up with the ``re``, ``gettext`` and
    ``shutil`` it pulls in). Anything else (abbreviations, ``--help``, attached short values,
    a value that looks like an option, an invalid number) returns None: argparse then parses
    the command line and gives its usual result or message."""
    if command not in ("run", "status", "plan"):
        return None
    args = FastArgs()
    i, n = 0, len(argv)
    while i < n:
        arg = argv[i]
        name, eq, value = arg.partition("=")
        spec = FAST_OPTIONS.get(name)
        if spec is None:
            return None
        attr, takes_value = spec
        if not takes_value:
            if eq:
                return None
            setattr(args, attr, True)
            i += 1
            continue
        if not eq:
            i += 1
            if i >= n:
                return None
            value = argv[i]
            if value.startswith("-"):
                return None
        elif name == "-C":  # argparse reads -C=DIR as the value "=DIR"
            return None
        if attr == "lock_timeout":
            try:
                setattr(args, attr, float(value))
            except ValueError:
                return None
        else:
            setattr(args, attr, value)
        i += 1
    args.command = command
    return args


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
