"""The command-line interface: thin Typer commands that load config, build the plan, run it,
render. Errors are typed (`conveyor.errors`), raised low and rendered here once: one paragraph,
a hint, a distinct exit code, and a traceback only with `--verbose`.
"""

from __future__ import annotations

import sys

from conveyor.cli import ci, hosts, local, prod, remote  # noqa: F401 (register commands)
from conveyor.cli.app import EnvOption, ProjectDir, app
from conveyor.errors import ConveyorError

__all__ = ["EnvOption", "ProjectDir", "app", "render_error", "run"]


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
