"""One renderer for every command: rich lines for people, JSON events (one per line) for
machines. Every text goes through the redactor, so a secret never reaches the terminal."""

from __future__ import annotations

import json
import sys
from typing import Any

from conveyor.masking import Redactor


class Renderer:
    def __init__(self, *, json_mode: bool = False, verbose: bool = False,
                 redactor: Redactor | None = None, stream=None) -> None:
        self.json_mode = json_mode
        self.verbose = verbose
        self.redact = redactor or Redactor()
        self._stream = stream or sys.stdout
        self._console = None

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self._stream, highlight=False, soft_wrap=True, emoji=False)
        return self._console

    # events from conveyor.plan ----------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        event = self.redact(event)
        if self.json_mode:
            self._stream.write(json.dumps(event, default=str) + "\n")
            self._stream.flush()
            return
        kind = event["event"]
        c = self.console
        if kind == "step_started":
            c.print(f"[cyan]▶[/cyan] {event['step']} ...")
        elif kind == "step_finished":
            # a step can finish and report a failure (the tests ran and failed): no ✓ then
            notes = event.get("notes") or []
            failed = any(str(n).startswith("FAILED") for n in notes)
            mark = "[bold red]✗[/bold red]" if failed else "[green]✓[/green]"
            text = _escape("; ".join(str(n) for n in notes))
            c.print(f"{mark} {_escape(str(event['step']))} [dim]{event['duration']:.2f}s[/dim]"
                    + (f"  {'[red]' + text + '[/red]' if failed else text}" if text else ""))
        elif kind == "step_failed":
            c.print(f"[bold red]✗ {event['step']} failed[/bold red] "
                    f"[dim]{event['duration']:.2f}s[/dim]")
        elif kind == "output" and self.verbose:
            c.print(f"    [dim]{_escape(event['line'])}[/dim]")
        elif kind == "undo_started":
            c.print(f"[yellow]↺[/yellow] undo {event['step']} ...")
        elif kind == "undo_finished":
            c.print(f"[yellow]↺[/yellow] undo {event['step']}: {event['status']}"
                    + (f" ({event['error']})" if event.get("error") else ""))
        elif kind == "message":
            c.print(_escape(event["text"]))

    def message(self, text: str, **fields: Any) -> None:
        self({"event": "message", "text": text, **fields})

    def result(self, data: dict[str, Any], human: str | None = None) -> None:
        data = self.redact(data)
        if self.json_mode:
            self._stream.write(json.dumps({"event": "result", **data}, default=str) + "\n")
        elif human is not None:
            self.console.print(self.redact(human))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
