"""``conveyor migrate lint [VERSION ...]``: argparse front end of :func:`lint_migrations`.

Exit codes: 0 clean (or only warnings without ``--strict``), 1 warnings with ``--strict``,
2 any destructive or error finding, 3 lint could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from conveyor.migrations.errors import MigrationError
from conveyor.migrations.lint import lint_migrations
from conveyor.migrations.lint_report import EXIT_LINT_FAILED, JSON_FORMAT, LintError
from conveyor.migrations.squawk import MigrationLike


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # exit 3 (lint could not run), not argparse's 2 (destructive)
        self.print_usage(sys.stderr)
        raise LintError(f"conveyor migrate lint: {message}.", "See `conveyor migrate lint --help`.")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="conveyor migrate lint",
        description="Lint migrations' up.sql for destructive and locking/rewriting statements "
        "(squawk plus conveyor's own checks).",
        epilog="Exit codes: 0 clean (or only warnings without --strict), 1 warnings with "
        "--strict, 2 destructive or failing statements, 3 lint could not run.",
    )
    p.add_argument("versions", nargs="*", metavar="VERSION",
                   help="lint only these migrations (version, e.g. 20240131120000, or directory "
                   "name), as one set applied together: a table created by an earlier one is "
                   "new for the later ones; default: every migration in the directory")
    p.add_argument("--all", action="store_true",
                   help="lint every migration in the directory (the default without VERSIONs), "
                   "each on its own: tables created by earlier migrations count as existing")
    p.add_argument("--migration-dir", metavar="DIR",
                   help="the migrations directory (default: the config's, else ./migrations)")
    p.add_argument("-C", "--project-dir", metavar="DIR", default=None,
                   help="the project directory (where conveyor.toml is)")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of text")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings")
    return p


def _migration_dir(args: argparse.Namespace) -> Path:
    project = Path(args.project_dir) if args.project_dir else Path(".")
    if args.migration_dir:
        d = Path(args.migration_dir)
        return d if d.is_absolute() or not args.project_dir else project / d
    if (project / "conveyor.toml").is_file():
        from conveyor.config import load_config  # lazy: pydantic is slow to import

        try:
            return Path(load_config(project).migrations_dir)
        except Exception as exc:  # ConfigError renders file, key and hint
            raise LintError(f"cannot read the configuration: {exc}",
                            "Fix conveyor.toml, or pass --migration-dir.") from exc
    return project / "migrations"


def _select(migrations: Sequence[MigrationLike], versions: list[str]) -> list[MigrationLike]:
    if not versions:
        return list(migrations)
    wanted: list[MigrationLike] = []
    for v in versions:
        key = v.replace("-", "") if "_" not in v else v
        match = [m for m in migrations if m.version == key or m.name == v]
        if not match:
            raise LintError(f"no migration with version or name {v!r} in the directory.",
                            "Run `conveyor migrate status` to list them.")
        wanted.extend(m for m in match if m not in wanted)
    return [m for m in migrations if m in wanted]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    try:
        args = _parser().parse_args(argv)
        if args.all and args.versions:
            raise LintError("give either --all or VERSIONs, not both.")
        from conveyor.migrations.discovery import discover

        directory = _migration_dir(args)
        migrations = _select(discover(directory), args.versions)
        # VERSIONs name the set about to be applied together; a whole history is not one
        report = lint_migrations(migrations, one_set=bool(args.versions))
    except MigrationError as exc:
        code = EXIT_LINT_FAILED
        if as_json:
            print(json.dumps({"format": JSON_FORMAT, "error": type(exc).__name__,
                              "message": str(exc), "exit_code": code}, indent=2))
        else:
            print(f"conveyor migrate lint: error: {exc}", file=sys.stderr)
        return code
    if args.json:
        print(report.to_json(args.strict))
    else:
        print(report.render_text(args.strict, relative_to=Path.cwd()))
    return report.exit_code(args.strict)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
