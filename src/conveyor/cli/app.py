"""The Typer application, its root options, and the commands that belong to no stage
(`config check`, `migrate`). Command modules (`conveyor.cli.local`, `remote`, `prod`, `ci`)
register their commands on `app`; `conveyor.cli.run` assembles and runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from conveyor import __version__
from conveyor.errors import exit_codes_text

# --------------------------------------------------------------------------- help rendering
#
# Docstrings are hard-wrapped at 100 columns; rich rewraps them to the terminal. Before a help
# page is rendered, each description is made flowing paragraphs (a paragraph's lines joined; a
# paragraph of list items or indented lines keeps its lines) and its square brackets are escaped
# (rich would take `[revert]` for a style tag and drop it). The root's exit-code epilogue is
# printed as a two-column table.

_TIDY = "_conveyor_help_tidy"


def flowing(text: str | None) -> str | None:
    """Help text as flowing paragraphs, rich markup escaped."""
    import inspect

    from rich.markup import escape

    if not text:
        return text
    paragraphs = []
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = para.splitlines()
        listed = len(lines) > 1 and all(
            ln.lstrip().startswith(("- ", "* ", "• ")) or ln.startswith(" ") for ln in lines[1:])
        paragraphs.append(para if listed or para.startswith("\b") else
                          " ".join(ln.strip() for ln in lines))
    return escape("\n\n".join(paragraphs))


def tidy_help(cmd: Any) -> Any:
    """Make a command's (and its sub-commands' and parameters') help flowing and markup-safe,
    once."""
    if getattr(cmd, _TIDY, False):
        return cmd
    setattr(cmd, _TIDY, True)
    cmd.help = flowing(cmd.help)
    if cmd.epilog and cmd.epilog is not EXIT_CODES_EPILOG:
        cmd.epilog = flowing(cmd.epilog)
    for param in cmd.params:
        if getattr(param, "help", None):
            param.help = flowing(param.help)
    for sub in (getattr(cmd, "commands", None) or {}).values():  # a group's commands
        tidy_help(sub)
    return cmd


def exit_codes_table() -> Any:
    """The exit codes as a rich table: code, meaning (wrapped in its column)."""
    from rich.table import Table

    from conveyor.errors import EXIT_CODES

    table = Table(box=None, show_header=False, padding=(0, 1, 0, 0), pad_edge=False,
                  title="Exit codes:", title_justify="left", title_style="")
    table.add_column(justify="right", no_wrap=True)
    table.add_column(overflow="fold")
    for code, (_, text) in sorted(EXIT_CODES.items()):
        table.add_row(str(code), text)
    return table


def tidy_when_shown(cmd: Any) -> Any:
    """Have a command (and its sub-commands) tidy its help when the help is shown: a command
    that runs never imports rich for that (0.05 to 0.1 s)."""
    if getattr(cmd, _TIDY, False) or "format_help" in vars(cmd):
        return cmd
    plain = cmd.format_help

    def format_help(ctx: Any, formatter: Any) -> None:
        tidy_help(cmd)
        plain(ctx, formatter)

    cmd.format_help = format_help
    for sub in (getattr(cmd, "commands", None) or {}).values():  # a group's commands
        tidy_when_shown(sub)
    return cmd


class ConveyorGroup(TyperGroup):
    """The root group: tidies every help text before it is shown; the exit codes as a table."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        return tidy_when_shown(cmd) if cmd is not None else None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        tidy_help(self)
        epilog = self.epilog
        self.epilog = None
        try:
            super().format_help(ctx, formatter)
        finally:
            self.epilog = epilog
        if epilog is EXIT_CODES_EPILOG:
            from rich.padding import Padding
            from typer import rich_utils

            rich_utils._get_rich_console().print(Padding(exit_codes_table(), (1, 1, 1, 1)))
        elif epilog:
            formatter.write_paragraph()
            formatter.write_text(epilog)


#: the root's epilogue (`conveyor --help` prints it as a table; plain lines without rich)
EXIT_CODES_EPILOG = "Exit codes:\n" + exit_codes_text()

app = typer.Typer(
    name="conveyor",
    cls=ConveyorGroup,
    help="Deploy a containerized app and its PostgreSQL database: local -> dev -> prod, with "
    "Diesel-compatible migrations, backups and rollback.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    epilog=EXIT_CODES_EPILOG,
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


def _sentence(text: str) -> str:
    """The engine's lower-case help line as the other commands' sentences: capital, full stop."""
    text = text.strip()
    if not text:
        return text
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", ")")) else ".")


def migrate_help(argv: list[str]) -> int:
    """`conveyor migrate [COMMAND] --help` in the style of the other commands' help (rich
    panels), from the engine's argparse parsers (`conveyor.migrations.cli_args`)."""
    import argparse

    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from typer import rich_utils

    from conveyor.migrations import cli_args

    command, _ = cli_args.subcommand([a for a in argv if a not in ("-h", "--help")])
    if command == "lint":
        from conveyor.migrations.cli import main as migrate_main

        return migrate_main(argv)  # the linter's own parser
    parser = cli_args.parser(command if command in cli_args.COMMANDS else None)
    console = rich_utils._get_rich_console()
    usage = parser.format_usage().strip().removeprefix("usage: ")
    console.print(Padding(Text("Usage: " + " ".join(usage.split())), 1))
    if parser.description:
        console.print(Padding(Text(_sentence(parser.description)), (0, 1, 1, 1)))

    def panel(title: str, rows: list[tuple[str, str, str]]) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="bold cyan")
        grid.add_column(no_wrap=True, style="bold yellow")
        grid.add_column()
        for row in rows:
            grid.add_row(*row)
        console.print(Panel(grid, title=title, title_align="left", border_style="dim"))

    options, positionals, commands = [], [], []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands = [(name, "", _sentence(cli_args.COMMANDS.get(name) or ""))
                        for name in action.choices]
        elif action.option_strings:
            metavar = "" if action.nargs == 0 else (action.metavar or action.dest.upper())
            options.append((", ".join(sorted(action.option_strings, key=len, reverse=True)),
                            str(metavar), _sentence(action.help or "")))
        else:
            positionals.append((str(action.metavar or action.dest), "",
                                _sentence(action.help or "")))
    if positionals:
        panel("Arguments", positionals)
    panel("Options", options)
    if commands:
        panel("Commands", commands)
    if parser.epilog:
        console.print(Padding(Text(parser.epilog), 1))
    return 0


@app.command(
    "migrate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def migrate(ctx: typer.Context) -> None:
    """Diesel-compatible migrations: run, revert, redo, status, plan, generate, lint."""
    from conveyor.migrations.cli import main as migrate_main

    args = list(ctx.args)
    if "-h" in args or "--help" in args:
        raise typer.Exit(migrate_help(args))
    raise typer.Exit(migrate_main(args))
