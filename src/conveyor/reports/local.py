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
from conveyor.steps import foreign
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
    command = state.target.cfg.migrations.command
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
        # the project's own tool migrates (`migrations.command`): it ran, and decided
        "migrations_tool": foreign.shown(command) if command else None,
        "nothing_changed": nothing,
        "steps": [{"name": s.name, "status": s.status, "duration": round(s.duration, 3)}
                  for s in steps],
    }


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The summary after `conveyor up`, as plain lines."""
    image = s["image"] + (f" ({(s['image_id'] or '')[7:19]}, " if s.get("image_id") else " (")
    image += "built)" if s["built"] else "unchanged)"
    tool = s.get("migrations_tool")
    if tool:
        migrations = f"ran `{tool}` (the tool decides what is pending)"
    elif s["migrations_applied"]:
        migrations = f"applied {len(s['migrations_applied'])}: " + ", ".join(
            s["migrations_applied"])
    else:
        migrations = f"none pending ({s['migrations_total']} applied)"
    steps = ", ".join(f"{st['name']} {st['duration']:.2f}s" for st in s["steps"])
    total = sum(st["duration"] for st in s["steps"])
    lines = [f"up: {s['url']}", f"  image       {image}", f"  migrations  {migrations}",
             f"  steps       {steps} (total {total:.2f}s)"]
    if s["nothing_changed"]:
        lines.append("nothing changed: no rebuild, no container changes, "
                     + (f"`{tool}` ran" if tool else "no pending migrations"))
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
    if m.get("tool"):
        return out + tool_status_lines(m)
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


def tool_status_lines(m: dict[str, Any]) -> list[str]:
    """The migrations of `status` when the project's own tool migrates: its status command's
    output (or what conveyor cannot tell), never the engine's "0 applied"."""
    tool = m["tool"]
    out = [f"  migrations  managed by the project's tool (`{escape(tool['command'])}`)"]
    if not tool.get("status_command"):
        out.append(f"              {escape(foreign.CANNOT_TELL)} (set "
                   "migrations.status_command to show the tool's status)")
        return out
    rc = tool.get("exit_code")
    head = f"  `{escape(tool['status_command'])}`"
    if "output" not in tool:
        return [*out, f"{head}: [yellow]not run[/yellow] (no app image to run it in)"]
    if rc == 0:
        out.append(head + ":")
    else:
        out.append(f"{head} [red]" + ("timed out" if rc is None else
                                       f"failed ({foreign.exit_meaning(rc)})") + "[/red]:")
    out += [f"    {escape(line)}" for line in tool.get("output") or [] if line.strip()]
    return out
