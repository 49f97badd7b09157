"""``conveyor migrate ...`` (also ``python -m conveyor.migrations ...``).

argparse, not Typer: it must run where only the standard library and psycopg exist (a
temporary container), and a no-op ``run`` stays quick (Typer, rich and pydantic are not
imported; the config only when it is needed).

Exit codes (:data:`cli_args.EXIT_CODES`): 0 success; 1 a migration failed, the lock timed out,
drift was refused, the database could not be reached, or a migration cannot be reverted; 2
usage, configuration or migration-directory errors; 3 ``status``/``plan`` list blocking
problems; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from conveyor.migrations.cli_args import (
    COMMANDS,
    EXIT_BLOCKED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    parser,
    subcommand,
)
from conveyor.migrations.errors import MigrationError, UsageError, mask_secrets

if TYPE_CHECKING:
    from conveyor.migrations.engine import Migrator
    from conveyor.migrations.records import Problem

__all__ = ["EXIT_BLOCKED", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]


def _opt(args, name, default=None):
    return getattr(args, name, default)


# --------------------------------------------------------------------------- resolution


class _Context:
    def __init__(self, args: argparse.Namespace, exiting: bool = False) -> None:
        #: the parsed command line (each command reads the options it defined)
        self.args: Any = args
        #: the process exits when the command is done (:func:`main`)
        self.exiting = exiting
        pd = _opt(args, "project_dir")
        self.project_dir: str | None = pd or None
        self._config = None

    @property
    def base(self) -> str:
        return self.project_dir or "."

    def config(self):
        if self._config is None:
            from conveyor.config import ConfigError, load_config  # lazy: pydantic is slow

            try:
                self._config = load_config(self.project_dir)
            except ConfigError as exc:
                raise UsageError(
                    str(exc),
                    "Pass --database-url / set DATABASE_URL and --migration-dir to run without a "
                    "conveyor.toml.",
                ) from None
        return self._config

    def has_config(self) -> bool:
        return os.path.isfile(os.path.join(self.base, "conveyor.toml"))

    def migrations_dir(self) -> str:
        """--migration-dir (relative to -C DIR when given), $MIGRATION_DIRECTORY, the config's,
        else ./migrations."""
        d = _opt(self.args, "migration_dir") or os.environ.get("MIGRATION_DIRECTORY")
        if d:
            if os.path.isabs(d) or self.project_dir is None:
                return d
            return os.path.join(self.project_dir, d)
        if self.has_config():
            return os.fspath(self.config().migrations_dir)
        return os.path.join(self.base, "migrations")

    def database_url(self) -> str:
        url = _opt(self.args, "database_url") or os.environ.get("DATABASE_URL")
        if url:
            return url
        env = _opt(self.args, "env") or "local"
        cfg = self.config()
        try:
            return cfg.database_url(env)
        except MigrationError:
            raise
        except Exception as exc:  # noqa: BLE001 - ConfigError and friends: file, key, hint
            raise UsageError(f"Cannot get the database URL of environment {env!r}: {exc}",
                             "Pass --database-url or set DATABASE_URL.") from None


# --------------------------------------------------------------------------- output


def _print_json(data) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


def _warn(text: str) -> None:
    print(f"warning: {mask_secrets(text)}", file=sys.stderr)


def _fmt_ms(ms) -> str:
    if ms is None:
        return "?"
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _migrator_class(ctx: _Context) -> type[Migrator]:
    """The engine's Migrator, imported the quick way: psycopg's version modules seeded, the
    cyclic GC paused meanwhile, and what the import made frozen when the process exits after
    the command (see ``startup``)."""
    from conveyor.migrations import startup

    startup.seed_versions()
    with startup.gc_paused(freeze=ctx.exiting):
        from conveyor.migrations.engine import Migrator
    return Migrator


def _migrator(ctx: _Context, live: bool) -> Migrator:
    migrator = _migrator_class(ctx)
    lt = _opt(ctx.args, "lock_timeout")
    waiting: list[bool] = []

    def on_event(event: str, **data: Any) -> None:
        if event == "waiting_for_lock" and not waiting:
            waiting.append(True)
            print(f"Waiting for the migration lock (pg_advisory_lock({data['key']})): another "
                  "runner is migrating this database...", file=sys.stderr, flush=True)
        if event == "done" and live:
            step = data["step"]
            verb = "Applied" if step.direction == "up" else "Reverted"
            print(f"{verb} {step.name} ({_fmt_ms(step.duration_ms)})", flush=True)

    url, mdir = ctx.database_url(), ctx.migrations_dir()
    if lt is None and ctx._config is not None:  # the config was needed anyway: its default
        lt = getattr(getattr(ctx._config, "migrations", None), "lock_timeout", None)
    return migrator(url, mdir, lock_timeout=60.0 if lt is None else float(lt),
                    on_event=on_event)


def _cmd_run(ctx: _Context) -> int:
    as_json = bool(_opt(ctx.args, "json"))
    m = _migrator(ctx, live=not as_json)
    allow = bool(_opt(ctx.args, "allow_drift"))
    try:
        result = m.run(allow_drift=allow)
    finally:
        _print_notices(ctx, m)
    _report_problems(result.problems, allow)
    if as_json:
        _print_json({"ok": True, "command": "run", **result.to_dict()})
        return EXIT_OK
    n = len(result.applied)
    if n == 0:
        print("Nothing to do: no pending migration.")
    else:
        print(f"{n} migration{'s' if n != 1 else ''} applied in {result.duration_ms / 1000:.2f} s.")
    return EXIT_OK


def _print_notices(ctx: _Context, m: Migrator) -> None:
    """With --verbose, the server's notices (RAISE NOTICE in migrations, ...) on stderr."""
    if not _opt(ctx.args, "verbose"):
        return
    for notice in m.notices:
        if "already exists, skipping" in notice and "_migrations" in notice:
            continue  # our own CREATE TABLE IF NOT EXISTS
        print(mask_secrets(notice), file=sys.stderr)


def _report_problems(problems: list[Problem], allow_drift: bool) -> None:
    for p in problems:
        if p.kind == "unrecorded":
            continue  # recorded during this run
        suffix = " (ignored: --allow-drift)" if p.blocking and allow_drift else ""
        _warn(p.message + suffix)


def _cmd_revert(ctx: _Context, redo: bool = False) -> int:
    as_json = bool(_opt(ctx.args, "json"))
    m = _migrator(ctx, live=not as_json)
    a = ctx.args
    if a.number is not None and a.number < 0:
        raise UsageError(f"-n must be 0 or more, got {a.number}.")
    try:
        result = (m.redo if redo else m.revert)(a.number, all=a.all)
    finally:
        _print_notices(ctx, m)
    if as_json:
        _print_json({"ok": True, "command": "redo" if redo else "revert", **result.to_dict()})
        return EXIT_OK
    n = len(result.reverted)
    if n == 0:
        print("Nothing to revert: no migration is applied.")
    elif redo:
        print(f"{n} migration{'s' if n != 1 else ''} redone in {result.duration_ms / 1000:.2f} s.")
    else:
        print(f"{n} migration{'s' if n != 1 else ''} reverted in "
              f"{result.duration_ms / 1000:.2f} s.")
    return EXIT_OK


def _cmd_status(ctx: _Context, plan: bool = False) -> int:
    migrator = _migrator_class(ctx)
    url = ctx.database_url()
    mdir = ctx.migrations_dir()
    status = migrator(url, mdir).status()
    if _opt(ctx.args, "json"):
        data = status.to_dict()
        data.update({"database": mask_secrets(url), "migration_dir": str(mdir),
                     "run_would_refuse": bool(status.blocking_problems)})
        if plan:
            data = {"database": data["database"], "migration_dir": data["migration_dir"],
                    "pending": data["pending"], "problems": data["problems"],
                    "run_would_refuse": data["run_would_refuse"]}
        _print_json(data)
        return EXIT_BLOCKED if status.blocking_problems else EXIT_OK
    if plan:
        if not status.pending:
            print("Nothing to apply: no pending migration.")
        total = len(status.pending)
        for i, mig in enumerate(status.pending, 1):
            tx = "in a transaction" if mig.run_in_transaction else "run_in_transaction = false"
            print(f"-- [{i}/{total}] {mig.name} (version {mig.version}, {tx})")
            print(f"-- {mig.up_path}")
            print(mig.up_sql.rstrip("\n"))
            print()
        for p in status.problems:
            _warn(p.message)
        if status.blocking_problems:
            _warn("`conveyor migrate run` will refuse to run until this is resolved "
                  "(or --allow-drift is given)")
            return EXIT_BLOCKED
        return EXIT_OK
    print(f"Database:   {mask_secrets(url)}")
    print(f"Migrations: {mdir}")
    marks = {"applied": "X", "edited": "!", "missing": "?", "unrecorded": "X"}
    rows = [(marks[a.state], a.version, (a.migration.name if a.migration else a.name) or "",
             a.state + (f" {_utc(a.run_on)}" if a.run_on else "")) for a in status.applied]
    rows += [(" ", mg.version, mg.name, "pending") for mg in status.pending]
    rows.sort(key=lambda r: r[1])
    width = max([len(r[2]) for r in rows] + [10])
    for mark, version, name, state in rows:
        print(f"  [{mark}] {name:<{width}}  {state}")
    if status.problems:
        print("Problems:")
        for p in status.problems:
            print(f"  - {p.kind}: {p.message}")
    print(f"{len(status.applied)} applied, {len(status.pending)} pending, "
          f"{len(status.blocking_problems)} blocking problem"
          f"{'s' if len(status.blocking_problems) != 1 else ''}.")
    if status.blocking_problems:
        _warn("`conveyor migrate run` will refuse to run until this is resolved "
              "(or --allow-drift is given)")
        return EXIT_BLOCKED
    return EXIT_OK


def _utc(run_on: str) -> str:
    """Diesel's ``run_on`` (``2024-05-01T12:00:00.123456``, UTC: the session's time zone, as
    Diesel's) with its zone: ``2024-05-01 12:00:00 UTC``."""
    return run_on.replace("T", " ").split(".", 1)[0] + " UTC"


def _cmd_generate(ctx: _Context) -> int:
    from conveyor.migrations.generate import generate

    a = ctx.args
    directory = generate(ctx.migrations_dir(), a.name, version_style=a.version_style,
                         version=a.explicit_version, down=not a.no_down,
                         run_in_transaction=not a.no_transaction)
    for f in ("up.sql", "down.sql", "metadata.toml"):
        if (directory / f).exists():
            print(f"Creating {_relative(directory / f)}")
    return EXIT_OK


def _relative(path) -> str:
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _lint(argv: list[str]) -> int:
    """Hand `lint` over to conveyor.migrations.lint with the options it knows."""
    from conveyor.migrations.lint_cli import main as lint_main

    rest: list[str] = []
    skip_value = {"--database-url", "--env", "--lock-timeout"}
    drop_flag = {"--allow-drift", "-v", "--verbose"}
    it = iter(argv)
    seen_lint = False
    for arg in it:
        if not seen_lint and arg == "lint":
            seen_lint = True
            continue
        name = arg.split("=", 1)[0]
        if name in skip_value:
            if "=" not in arg:
                next(it, None)
            continue
        if arg in drop_flag:
            continue
        rest.append(arg)
    if "--migration-dir" not in {a.split("=", 1)[0] for a in rest} and \
            os.environ.get("MIGRATION_DIRECTORY"):
        rest += ["--migration-dir", os.environ["MIGRATION_DIRECTORY"]]
    return lint_main(rest)


def main(argv: list[str] | None = None, *, exiting: bool = False) -> int:
    """Run one ``conveyor migrate`` command; its exit code. ``exiting``: the process exits
    right after (conveyor's entry point, ``python -m conveyor.migrations``), which lets the
    start-up freeze what the imports made (``startup.gc_paused``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command, index = subcommand(argv)
    if command == "lint":
        return _lint(argv)
    verbose = "-v" in argv or "--verbose" in argv
    as_json = "--json" in argv
    try:
        if command in COMMANDS:
            args = parser(command).parse_args(argv[:index] + argv[index + 1:])
        else:
            args = parser().parse_args(argv)
        ctx = _Context(args, exiting)
        cmd = args.command
        if cmd == "run":
            return _cmd_run(ctx)
        if cmd == "revert":
            return _cmd_revert(ctx)
        if cmd == "redo":
            return _cmd_revert(ctx, redo=True)
        if cmd == "status":
            return _cmd_status(ctx)
        if cmd == "plan":
            return _cmd_status(ctx, plan=True)
        if cmd == "generate":
            return _cmd_generate(ctx)
        raise UsageError(f"unknown command {cmd!r}")  # pragma: no cover - argparse checks
    except MigrationError as exc:  # an ordinary error: one paragraph, no traceback
        completed = getattr(exc, "completed", None)
        if as_json:
            data = {"ok": False, "error": exc.to_dict(verbose)}
            if completed is not None:
                data["completed"] = [s.to_dict() for s in completed]
            _print_json(data)
        print(f"error: {exc.render(verbose)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; the running query was cancelled (a migration running in a "
              "transaction was rolled back).", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `conveyor migrate status | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
        except OSError:  # pragma: no cover
            pass
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - a bug: still one paragraph, secrets masked
        if verbose:
            import traceback

            traceback.print_exc()
        print(f"error: internal error ({type(exc).__name__}): {mask_secrets(str(exc))}. "
              "Run again with --verbose for the traceback, and report it.", file=sys.stderr)
        return EXIT_FAILED
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
