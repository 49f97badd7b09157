"""What the remote and prod commands share: option types, the renderer, the plan printer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.config import Config, load_config
from conveyor.masking import Redactor
from conveyor.plan import EventSink
from conveyor.render import Renderer

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan (each step and the "
                                      "argv it runs) and do nothing else.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON lines).")]
EnvArg = Annotated[str, typer.Argument(help="Environment name (from conveyor.toml).",
                                       show_default=False)]

#: steps whose output is shown as it happens (other steps' output: with --verbose)
STREAMED = {"build", "push", "migrate", "test"}


def verbose(ctx: typer.Context | None) -> bool:
    return bool(ctx is not None and ctx.obj is not None and getattr(ctx.obj, "verbose", False))


def renderer(ctx: typer.Context | None, as_json: bool,
             redactor: Redactor | None = None) -> Renderer:
    return Renderer(json_mode=as_json, verbose=verbose(ctx), redactor=redactor)


def emitter(r: Renderer, streamed: set[str] = STREAMED) -> EventSink:
    """Plan events to the renderer; some steps' output lines are shown live."""

    def emit(event: dict[str, Any]) -> None:
        if (not r.json_mode and not r.verbose and event.get("event") == "output"
                and event.get("step") in streamed):
            from rich.markup import escape

            r.console.print(f"    [dim]{escape(r.redact(event['line']))}[/dim]")
            return
        r(event)

    return emit


def print_plan(r: Renderer, description: list[dict[str, Any]], title: str) -> None:
    if r.json_mode:
        r.result({"dry_run": True, "title": title, "plan": description})
        return
    from rich.markup import escape

    c = r.console
    c.print(f"[bold]{escape(title)}[/bold] (dry run: nothing is done)")
    for i, step in enumerate(description, 1):
        c.print(f"[cyan]{i:>2}. {escape(step['step'])}[/cyan]")
        for cmd in step["commands"]:
            c.print(f"      {escape(r.redact(cmd))}")
        for cmd in step.get("undo") or []:
            c.print(f"      [yellow]undo:[/yellow] {escape(r.redact(cmd))}")


def load(project_dir: Path) -> Config:
    return load_config(project_dir)


def warn_allow_drift(r: Renderer, env: str) -> None:
    """`deploy --allow-drift`: loud, before the run (the record keeps it too)."""
    r.message(f"warning: --allow-drift: {env}'s pending migrations run even if applied ones "
              "differ from their files; recorded in the deployment record")
