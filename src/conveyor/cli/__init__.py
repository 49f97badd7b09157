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
from conveyor.errors import ConveyorError, exit_codes_text

app = typer.Typer(
    name="conveyor",
    help="Deploy a containerized app and its PostgreSQL database: local -> dev -> prod, with "
    "Diesel-compatible migrations, backups and rollback.",
    no_args_is_help=True,
    add_completion=False,
    epilog="Exit codes:\n\n" + exit_codes_text().replace("\n", "\n\n"),
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


# Command modules register themselves on `app`; each lives in its own module.
from conveyor.cli import ci, local, prod, remote  # noqa: E402,F401


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
