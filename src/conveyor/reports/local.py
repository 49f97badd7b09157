"""What `conveyor up` and `conveyor status` report, from facts given as data.

`up_summary` reads the plan's state and step results (the JSON `result` event); the `*_lines`
functions turn a summary or a status into the lines people read (rich markup, escaped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape

from conveyor.commands.compose import Container
from conveyor.plan import StepResult
from conveyor.state.local import LocalState
from conveyor.targets.local import LocalStack

#: which container's log explains a failure of each step (None: the first one not running)
FAILURE_SERVICE: dict[str, str | None] = {"containers": None, "postgres": "db",
                                          "migrations": "db", "health": "app"}


def failure_service(stack: LocalStack, step: str,
                    containers: Sequence[Container] = ()) -> str | None:
    """The service whose log explains a failure of `step`, or None."""
    which = FAILURE_SERVICE.get(step, "")
    if which == "db":
        return stack.db_service
    if which == "app":
        return stack.app_service
    if which is None:  # compose up: the first service whose container is not running
        for c in containers:
            if c.state != "running":
                return c.service
        return stack.app_service
    return None


def up_summary(state: LocalState, steps: Sequence[StepResult]) -> dict[str, Any]:
    applied = list(state.migrations_applied)
    changed = list(state.containers_changed)
    nothing = not state.built and not changed and not applied
    return {
        "url": state.target.app_url,
        "project": state.target.project,
        "image": state.app_image,
        "image_id": state.image_id,
        "built": state.built,
        "inputs": state.inputs,
        "containers_changed": changed,
        "migrations_applied": applied,
        "migrations_total": state.migrations_total,
        "nothing_changed": nothing,
        "steps": [{"name": s.name, "status": s.status, "duration": round(s.duration, 3)}
                  for s in steps],
    }


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The summary after `conveyor up`, as plain lines."""
    image = s["image"] + (f" ({(s['image_id'] or '')[7:19]}, " if s.get("image_id") else " (")
    image += "built)" if s["built"] else "unchanged)"
    if s["migrations_applied"]:
        migrations = f"applied {len(s['migrations_applied'])}: " + ", ".join(
            s["migrations_applied"])
    else:
        migrations = f"none pending ({s['migrations_total']} applied)"
    steps = ", ".join(f"{st['name']} {st['duration']:.2f}s" for st in s["steps"])
    total = sum(st["duration"] for st in s["steps"])
    lines = [f"up: {s['url']}", f"  image       {image}", f"  migrations  {migrations}",
             f"  steps       {steps} (total {total:.2f}s)"]
    if s["nothing_changed"]:
        lines.append("nothing changed: no rebuild, no container changes, no pending migrations")
    return lines


def status_lines(d: dict[str, Any]) -> list[str]:
    """`conveyor status` of the local environment, as rich markup lines."""
    out = [(f"[bold]{d['environment']}[/bold]: compose project {d['project']} "
            f"({d['compose']}), {d['url']}")]
    rows = [("SERVICE", "STATE", "HEALTH", "IMAGE", "PORTS")] + [
        (r["service"], r["state"], r["health"] or "-", r["image"] or "-", r["ports"] or "-")
        for r in d["containers"]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for n, r in enumerate(rows):
        cells = [r[i].ljust(widths[i]) for i in range(4)] + [r[4]]
        line = "  " + "  ".join(escape(x) for x in cells)
        out.append(f"[red]{line}[/red]" if n and r[1] != "running" else line)
    h = d["health"]
    out.append(f"  health      GET {h['url']} -> "
               + (f"[green]{h['status']}[/green]" if h["ok"]
                  else f"[red]{escape(h['error'])}[/red]"))
    m = d["migrations"]
    if not m["ok"]:
        out.append(f"  migrations  [red]unknown[/red]: {escape(m['error'])}")
        return out
    pending = ", ".join(p["name"] for p in m["pending"]) or "none"
    out.append(f"  migrations  {len(m['applied'])} applied; pending: {pending}")
    if m["drift"]:
        out += [f"  [yellow]drift[/yellow]       {escape(p['message'])}" for p in m["drift"]]
    else:
        out.append("  drift       none (every applied migration matches its file)")
    return out
