"""The command-line interface: thin Typer commands that load config, act, and render.

Errors are typed (`conveyor.errors`), raised low and rendered here once: one paragraph, a hint,
a distinct exit code, and a traceback only with `--verbose`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from conveyor import __version__
from conveyor.errors import ConveyorError, NotImplementedYet

app = typer.Typer(
    name="conveyor",
    help="Deploy a containerized app and its PostgreSQL database: local -> dev -> prod, with "
    "Diesel-compatible migrations, backups and rollback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ProjectDir = Annotated[
    Path,
    typer.Option("-C", "--project-dir", help="The application's directory (holds conveyor.toml).",
                 show_default=False),
]
EnvOption = Annotated[Optional[str], typer.Option("--env", "-e", help="Environment name.")]


class State:
    verbose: bool = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show tracebacks on errors.")] = False,
) -> None:
    ctx.obj = State()
    ctx.obj.verbose = verbose


config_app = typer.Typer(help="Inspect the project's conveyor.toml.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    project_dir: ProjectDir = Path("."),
    env: EnvOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validate conveyor.toml and print the resolved configuration, secrets masked."""
    from conveyor.config import load_config

    cfg = load_config(project_dir)
    names = [env] if env else None
    if env:
        cfg.environment(env)
    data = cfg.masked(names)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(f"[green]ok[/green] {data['file']} is valid; resolved (secrets masked):")
    console.print_json(data=data)


@app.command(
    "migrate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def migrate(ctx: typer.Context) -> None:
    """Diesel-compatible migrations: run, revert, redo, status, plan, generate, lint."""
    from conveyor.migrations.cli import main as migrate_main

    raise typer.Exit(migrate_main(list(ctx.args)))


def _stub(name: str, issue: str, help_text: str) -> None:
    def command(
        ctx: typer.Context,
    ) -> None:
        raise NotImplementedYet(f"`conveyor {name}` is not implemented yet (planned in {issue})")

    command.__doc__ = f"(not implemented yet) {help_text}"
    app.command(name, context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})(command)


# Command modules register themselves on `app`; each lives in its own module so that work on
# one stage does not touch the others. Commands not registered (yet) get a stub that says so.
import importlib  # noqa: E402

for _module in ("local", "remote", "prod", "ci"):
    try:
        importlib.import_module(f"conveyor.cli.{_module}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"conveyor.cli.{_module}":
            raise

_registered = {c.name for c in app.registered_commands}
for _name, _issue, _help in [
    ("up", "issue #4", "Bring the local stack up: build, compose up, migrate, health-check."),
    ("down", "issue #4", "Stop the local stack (volumes only with --volumes)."),
    ("test", "issue #4", "Run the project's tests against the running stack."),
    ("logs", "issue #4", "Show app, database or migration logs."),
    ("status", "issue #4", "Show containers, health, migrations and drift."),
    ("build", "issue #5", "Build the app image, tagged with the git commit."),
    ("push", "issue #5", "Push the app image to the registry and record its digest."),
    ("setup", "issue #5", "Prepare an environment's host (database container, network)."),
    ("deploy", "issue #5", "Deploy an image to an environment."),
    ("history", "issue #5", "Show an environment's deployments."),
    ("hosts", "issue #5", "Inspect and trust SSH host keys."),
    ("promote", "issue #6", "Promote the image that passed one environment to another."),
    ("rollback", "issue #6", "Go back to a previous deployment."),
    ("backup", "issue #6", "Back up an environment's database."),
    ("backups", "issue #6", "List an environment's backups."),
    ("restore", "issue #6", "Restore an environment's database from a backup."),
    ("ci", "issue #7", "Run the pipeline for the current branch."),
    ("init", "issue #7", "Write a conveyor.toml and a CI file for this repository."),
]:
    if _name not in _registered:
        _stub(_name, _issue, _help)


def render_error(exc: ConveyorError) -> None:
    from rich.console import Console

    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    console.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
    if exc.hint:
        console.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}")


def run(argv: list[str] | None = None) -> None:
    """Run the CLI. Click's standalone mode renders usage errors (exit 2), `Exit` codes and
    Ctrl-C; conveyor's own typed errors are rendered here, once."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or "-v" in argv
    try:
        app(args=argv, prog_name="conveyor", standalone_mode=True)
    except ConveyorError as exc:
        if verbose:
            raise
        render_error(exc)
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(0)
