"""The local stage's commands: up, test, logs, status, down.

Thin: load the config, open the local stack (`conveyor.stages.local`), run, render. Imports
inside the commands stay lazy: `conveyor --help` must not pay for them.

`status` and `logs` take environment names as their first positionals (`conveyor status dev
prod`, `conveyor logs dev app`); `local` is the default. A name of a remote environment is handed
to `conveyor.cli.remote.remote_status(cfg, env_name, as_json=...)` /
`remote_logs(cfg, env_name, services, follow=, since=, tail=)` when that module provides them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli import EnvOption, ProjectDir, app

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON events (one per line).")]
LOCAL = "local"


def _verbose(ctx: typer.Context) -> bool:
    return bool(getattr(ctx.obj, "verbose", False))


def _remote(command: str, cfg: Any, env_name: str, **kwargs: Any) -> Any:
    """Hand a remote environment to the remote stage's implementation of `command`."""
    import importlib

    from conveyor.errors import NotImplementedYet

    try:
        module = importlib.import_module("conveyor.cli.remote")
    except ModuleNotFoundError:
        module = None
    handler = getattr(module, f"remote_{command}", None)
    if handler is None:
        raise NotImplementedYet(
            f"`conveyor {command} {env_name}`: {command} of a remote environment is not "
            "implemented yet (issue #5); the local environment works: "
            f"`conveyor {command}`")
    return handler(cfg, env_name, **kwargs)


@app.command("up", epilog="Exit codes: 0 up; 2 configuration; 3 no Docker engine or no Compose; "
             "5 image build or pull; 6 compose up; 7 database not ready; 8 migration; "
             "9 health check.")
def up(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    env: EnvOption = None,
    as_json: JsonOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan, run nothing.")] = False,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Run `compose up` even when the containers are unchanged.")] = False,
) -> None:
    """Bring the local stack up: build the app image if its inputs changed, compose up, wait for
    Postgres, apply pending migrations, wait for the app's health check."""
    from conveyor.config import load_config
    from conveyor.errors import ConveyorError
    from conveyor.pipeline import execute
    from conveyor.render import Renderer
    from conveyor.stages import local as stage

    cfg = load_config(project_dir)
    stack = stage.open_stack(cfg, env or LOCAL)
    out = Renderer(json_mode=as_json, verbose=_verbose(ctx), redactor=stack.redactor)
    plan = stage.up_plan(stack, stage.UpOptions(refresh=refresh))
    if dry_run:
        try:  # show the Compose that would run, when it can be told without side effects
            stage.check_docker(stack)
            plan = stage.up_plan(stack, stage.UpOptions(refresh=refresh))
        except ConveyorError:
            pass
        steps = plan.describe()
        if as_json:
            out.result({"plan": "up", "steps": steps})
            return
        for s in steps:
            out.message(f"{s['step']}:")
            for c in s["commands"]:
                out.message(f"    {c}")
        return
    out.message(f"conveyor up: {cfg.app.name} ({stack.env_name}), compose project "
                f"{stack.project}")
    try:
        result = execute(plan, out)
    except ConveyorError as exc:
        _show_failure(stack, out, exc)
        raise
    summary = stage.up_summary(stack, result.values, result.steps)
    out.result(summary, human=None)
    if not as_json:
        _print_up_summary(out, summary)


def _show_failure(stack: Any, out: Any, exc: Exception) -> None:
    """After a failed step: the last lines of the container log that explains it."""
    from conveyor.stages import local as stage

    result = getattr(exc, "plan_result", None)
    failed = next((s for s in (result.steps if result else []) if s.status == "failed"), None)
    if failed is None:
        return
    try:
        containers = stage.project_containers(stack) if failed.name == "containers" else []
    except Exception:  # noqa: BLE001 - the log tail is a courtesy
        containers = []
    service = stage.failure_service(stack, failed.name, containers)
    if service is None:
        return
    lines = stage.log_tail(stack, service)
    if out.json_mode:
        out({"event": "log_tail", "step": failed.name, "service": service, "lines": lines})
        return
    if not lines:
        out.message(f"(no log from the {service} container)")
        return
    out.message(f"last {len(lines)} lines of the {service} container's log:")
    for line in lines:
        out.message(f"  | {line}")


def _print_up_summary(out: Any, s: dict) -> None:
    image = s["image"] + (f" ({(s['image_id'] or '')[7:19]}, " if s.get("image_id") else " (")
    image += "built)" if s["built"] else "unchanged)"
    if s["migrations_applied"]:
        migrations = f"applied {len(s['migrations_applied'])}: " + ", ".join(
            s["migrations_applied"])
    else:
        migrations = f"none pending ({s['migrations_total']} applied)"
    steps = ", ".join(f"{st['name']} {st['duration']:.2f}s" for st in s["steps"])
    total = sum(st["duration"] for st in s["steps"])
    out.message(f"up: {s['url']}")
    out.message(f"  image       {image}")
    out.message(f"  migrations  {migrations}")
    out.message(f"  steps       {steps} (total {total:.2f}s)")
    if s["nothing_changed"]:
        out.message("nothing changed: no rebuild, no container changes, no pending migrations")


@app.command("down")
def down(
    project_dir: ProjectDir = Path("."),
    env: EnvOption = None,
    volumes: Annotated[bool, typer.Option(
        "--volumes", help="Also delete the volumes: the local database's data is LOST.")] = False,
) -> None:
    """Stop and remove the local stack's containers; its data stays unless --volumes."""
    from conveyor.config import load_config
    from conveyor.render import Renderer
    from conveyor.stages import local as stage

    cfg = load_config(project_dir)
    stack = stage.open_stack(cfg, env or LOCAL)
    out = Renderer(redactor=stack.redactor)
    if volumes:
        out.message(f"warning: --volumes deletes the volumes of compose project {stack.project}: "
                    "the local database's data is lost")
    stage.down(stack, volumes=volumes, sink=out.message)
    out.message(f"down: compose project {stack.project} stopped; "
                + ("volumes deleted" if volumes else
                   "its volumes (the database's data) are kept; `--volumes` deletes them"))


@app.command("test")
def test(
    project_dir: ProjectDir = Path("."),
    env: EnvOption = None,
) -> None:
    """Run the environment's test_command against the running local stack (APP_URL and
    DATABASE_URL set); its exit code is conveyor's."""
    import shlex
    import sys

    from conveyor.config import load_config
    from conveyor.stages import local as stage

    cfg = load_config(project_dir)
    stack = stage.open_stack(cfg, env or LOCAL)
    print(f"conveyor test: {shlex.join(stack.env.test_command)} in {stack.project_dir} "
          f"(APP_URL={stack.app_url})", file=sys.stderr, flush=True)
    # SystemExit, not typer.Exit: `conveyor.cli.run` drops the code of a typer.Exit (it calls
    # the app with standalone_mode=False, where click returns that code instead of raising)
    raise SystemExit(stage.run_tests(stack))


@app.command("logs")
def logs(
    targets: Annotated[Optional[list[str]], typer.Argument(
        help="[ENV] [SERVICE...]: an environment name (default local), then services "
        "(app, db or any compose service; default all).", show_default=False)] = None,
    project_dir: ProjectDir = Path("."),
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
    since: Annotated[Optional[str], typer.Option(
        "--since", help="Only lines since a time or duration (e.g. 10m, 2024-01-31T12:00).")]
    = None,
    tail: Annotated[Optional[int], typer.Option("--tail", "-n", help="Only the last N lines.")]
    = None,
) -> None:
    """Show the app's and the database's logs (secrets masked)."""
    from conveyor.config import load_config
    from conveyor.stages import local as stage

    cfg = load_config(project_dir)
    words = list(targets or [])
    env_name = LOCAL
    if words and words[0] in cfg.environment_names:
        env_name = words.pop(0)
    if cfg.environment(env_name).is_remote:
        _remote("logs", cfg, env_name, services=words, follow=follow, since=since, tail=tail)
        return
    stack = stage.open_stack(cfg, env_name)

    def write(line: str) -> None:
        typer.echo(line)

    raise SystemExit(stage.stream_logs(stack, words, follow=follow, since=since, tail=tail,
                                       write=write))


@app.command("status")
def status(
    envs: Annotated[Optional[list[str]], typer.Argument(
        help="Environments (default: local).", show_default=False)] = None,
    project_dir: ProjectDir = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Containers and their health, the app's health check, applied and pending migrations,
    drift between the migration files and the database."""
    import json

    from conveyor.config import load_config
    from conveyor.stages import local as stage

    cfg = load_config(project_dir)
    names = list(dict.fromkeys(envs or [LOCAL]))
    # remote environments are queried in parallel (conveyor.cli.remote), printed in order
    remote_names = [n for n in names if cfg.environment(n).is_remote]
    pending: dict[str, Any] = {}
    if remote_names:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=len(remote_names))
        pending = {n: pool.submit(_remote, "status", cfg, n, quiet=True) for n in remote_names}
        pool.shutdown(wait=False)
    reports: dict[str, Any] = {}
    for name in names:
        if name in pending:
            reports[name] = data = pending[name].result()
            if not as_json:
                _remote("print_status", cfg, name, data=data)
            continue
        stack = stage.open_stack(cfg, name)
        data = stack.redactor(stage.gather_status(stack))
        reports[name] = data
        if not as_json:
            _print_status(data)
    if as_json:
        # `conveyor status --json`: the local object; with environments named: keyed by name
        typer.echo(json.dumps(reports if envs else reports[LOCAL], indent=2, default=str))


def _print_status(d: dict) -> None:
    from rich.console import Console
    from rich.markup import escape

    c = Console(highlight=False, soft_wrap=True)
    c.print(f"[bold]{d['environment']}[/bold]: compose project {d['project']} ({d['compose']}), "
            f"{d['url']}")
    rows = [("SERVICE", "STATE", "HEALTH", "IMAGE", "PORTS")] + [
        (r["service"], r["state"], r["health"] or "-", r["image"] or "-", r["ports"] or "-")
        for r in d["containers"]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for n, r in enumerate(rows):
        cells = [r[i].ljust(widths[i]) for i in range(4)] + [r[4]]
        line = "  " + "  ".join(escape(x) for x in cells)
        if n and r[1] != "running":
            line = f"[red]{line}[/red]"
        c.print(line)
    h = d["health"]
    c.print(f"  health      GET {h['url']} -> "
            + (f"[green]{h['status']}[/green]" if h["ok"] else f"[red]{escape(h['error'])}[/red]"))
    m = d["migrations"]
    if not m["ok"]:
        c.print(f"  migrations  [red]unknown[/red]: {escape(m['error'])}")
        return
    pending = ", ".join(p["name"] for p in m["pending"]) or "none"
    c.print(f"  migrations  {len(m['applied'])} applied; pending: {pending}")
    if m["drift"]:
        for p in m["drift"]:
            c.print(f"  [yellow]drift[/yellow]       {escape(p['message'])}")
    else:
        c.print("  drift       none (every applied migration matches its file)")
