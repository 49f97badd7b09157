"""The Typer application, its root options, and the commands that belong to no stage
(`config check`, `migrate`). Command modules (`conveyor.cli.local`, `remote`, `prod`, `ci`)
register their commands on `app`; `conveyor.cli.run` assembles and runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from conveyor import __version__
from conveyor.errors import exit_codes_text

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
EnvOption = Annotated[str | None, typer.Option("--env", "-e", help="Environment name.")]


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
    allow_unset: Annotated[bool, typer.Option(
        "--allow-unset", help="With --env: do not fail on secrets that are not set (check the "
        "file's syntax only).")] = False,
) -> None:
    """Validate conveyor.toml and print the resolved configuration, secrets masked. With --env,
    every secret the environment needs must be set (exit 2 otherwise)."""
    from conveyor.config import load_config

    cfg = load_config(project_dir)
    names = [env] if env else None
    if env:
        cfg.environment(env)
    data = cfg.masked(names)
    unset = cfg.unset_secrets(names)
    data["unset_secrets"] = [{"key": u.key, "source": u.source, "reason": u.reason}
                             for u in unset]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    if env and not allow_unset:
        cfg.check_secrets(env)
    if as_json:
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(f"[green]ok[/green] {escape(data['file'])} is valid; resolved (secrets masked):")
    console.print_json(data=data)
    for u in unset:
        console.print(f"[yellow]not set:[/yellow] {escape(str(u))}", soft_wrap=True)


@app.command(
    "migrate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def migrate(ctx: typer.Context) -> None:
    """Diesel-compatible migrations: run, revert, redo, status, plan, generate, lint."""
    from conveyor.migrations.cli import main as migrate_main

    raise typer.Exit(migrate_main(list(ctx.args)))
