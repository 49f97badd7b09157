"""The local stage's commands: up, test, logs, status, down.

Thin: load the config, resolve the local stack (`conveyor.targets.local`), build the plan
(`conveyor.plans.local`), execute it, render. The operations outside the plan live in
`conveyor.ops.local_*`. Imports inside the commands stay lazy: `conveyor --help` must not pay
for them.

`status` and `logs` take environment names as their first positionals (`conveyor status dev
prod`, `conveyor logs dev app`); `local` is the default. A name of a remote environment is handed
to `conveyor.cli.remote.remote_status(cfg, env_name, quiet=...)` /
`remote_logs(cfg, env_name, services, follow=, since=, tail=)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli.app import EnvOption, ProjectDir, app
from conveyor.errors import (
    BuildFailed,
    ComposeFailed,
    ConfigError,
    ConveyorError,
    DatabaseNotReady,
    DockerUnavailable,
    HealthCheckFailed,
    ImageUnavailable,
    MigrationStepFailed,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON events (one per line).")]
LOCAL = "local"

#: the exit codes of `conveyor up` (from the one table in conveyor.errors)
_UP_FAILURES: list[tuple[type[ConveyorError], str]] = [
    (ConfigError, "configuration"), (DockerUnavailable, "no Docker engine or no Compose"),
    (BuildFailed, "image build"), (ComposeFailed, "compose up"),
    (DatabaseNotReady, "database not ready"), (MigrationStepFailed, "migration"),
    (HealthCheckFailed, "health check"), (ImageUnavailable, "image pull (base or service image)"),
]
UP_EXIT_CODES = "Exit codes: 0 up; " + "; ".join(
    f"{cls.exit_code} {what}" for cls, what in sorted(_UP_FAILURES, key=lambda f: f[0].exit_code)
) + "."


def _verbose(ctx: typer.Context) -> bool:
    return bool(getattr(ctx.obj, "verbose", False))


@app.command("up", epilog=UP_EXIT_CODES)
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
    from conveyor.plan import execute
    from conveyor.plans.local import up_plan
    from conveyor.render import Renderer
    from conveyor.reports.local import summary_lines, up_summary
    from conveyor.state.local import LocalState
    from conveyor.targets.local import open_stack
    from conveyor.transport import LocalTransport

    cfg = load_config(project_dir)
    stack = open_stack(cfg, env or LOCAL)
    transport = LocalTransport(cwd=cfg.root_dir)
    out = Renderer(json_mode=as_json, verbose=_verbose(ctx), redactor=stack.redactor)
    state = LocalState(stack, refresh=refresh)
    if dry_run:
        _print_dry_run(out, state, transport)
        return
    out.message(f"conveyor up: {cfg.app.name} ({stack.env_name}), compose project "
                f"{stack.project}")
    try:
        result = execute(up_plan(state), state, out, transport=transport)
    except ConveyorError as exc:
        _show_failure(stack, transport, out, exc)
        raise
    summary = up_summary(state, result.steps)
    out.result(summary, human=None)
    if not as_json:
        for line in summary_lines(summary):
            out.message(line)


def _print_dry_run(out: Any, state: Any, transport: Any) -> None:
    """The plan, each step with its commands; shows the Compose that would run when it can be
    told without side effects."""
    from conveyor.plans.local import up_plan
    from conveyor.steps.docker_engine import check_docker

    try:
        state.docker_version, state.compose = check_docker(transport.run)
    except ConveyorError:
        pass
    steps = up_plan(state).describe()
    if out.json_mode:
        out.result({"plan": "up", "steps": steps})
        return
    for s in steps:
        out.message(f"{s['step']}:")
        for c in s["commands"]:
            out.message(f"    {c}")


def _show_failure(stack: Any, transport: Any, out: Any, exc: Exception) -> None:
    """After a failed step: the last lines of the container log that explains it."""
    from conveyor.ops.local_logs import log_tail
    from conveyor.reports.local import failure_service
    from conveyor.steps.local_containers import project_containers

    result = getattr(exc, "plan_result", None)
    failed = next((s for s in (result.steps if result else []) if s.status == "failed"), None)
    if failed is None:
        return
    try:
        containers = project_containers(stack, transport.run) \
            if failed.name == "containers" else []
    except Exception:  # noqa: BLE001 - the log tail is a courtesy
        containers = []
    service = failure_service(stack, failed.name, containers)
    if service is None:
        return
    lines = log_tail(stack, transport, service)
    if out.json_mode:
        out({"event": "log_tail", "step": failed.name, "service": service, "lines": lines})
        return
    if not lines:
        out.message(f"(no log from the {service} container)")
        return
    out.message(f"last {len(lines)} lines of the {service} container's log:")
    for line in lines:
        out.message(f"  | {line}")


@app.command("down")
def down(
    project_dir: ProjectDir = Path("."),
    env: EnvOption = None,
    volumes: Annotated[bool, typer.Option(
        "--volumes", help="Also delete the volumes: the local database's data is LOST.")] = False,
) -> None:
    """Stop and remove the local stack's containers; its data stays unless --volumes."""
    from conveyor.config import load_config
    from conveyor.ops.local_down import down as compose_down
    from conveyor.render import Renderer
    from conveyor.targets.local import open_stack
    from conveyor.transport import LocalTransport

    cfg = load_config(project_dir)
    stack = open_stack(cfg, env or LOCAL)
    out = Renderer(redactor=stack.redactor)
    if volumes:
        out.message(f"warning: --volumes deletes the volumes of compose project {stack.project}: "
                    "the local database's data is lost")
    compose_down(stack, LocalTransport(cwd=cfg.root_dir), volumes=volumes, sink=out.message)
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
    from conveyor.ops.local_test import run_tests
    from conveyor.targets.local import open_stack

    cfg = load_config(project_dir)
    stack = open_stack(cfg, env or LOCAL)
    print(f"conveyor test: {shlex.join(stack.env.test_command)} in {stack.project_dir} "
          f"(APP_URL={stack.app_url})", file=sys.stderr, flush=True)
    # SystemExit, not typer.Exit: `conveyor.cli.run` drops the code of a typer.Exit (it calls
    # the app with standalone_mode=False, where click returns that code instead of raising)
    raise SystemExit(run_tests(stack))


@app.command("logs")
def logs(
    targets: Annotated[Optional[list[str]], typer.Argument(  # noqa: UP045 - typer needs it
        help="[ENV] [SERVICE...]: an environment name (default local), then services "
        "(app, db or any compose service; default all).", show_default=False)] = None,
    project_dir: ProjectDir = Path("."),
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
    since: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--since", help="Only lines since a time or duration (e.g. 10m, 2024-01-31T12:00).")]
    = None,
    tail: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--tail", "-n", help="Only the last N lines.")] = None,
    show_all: Annotated[bool, typer.Option(
        "--all", help="Also the health probes' lines (GETs of the health path).")] = False,
) -> None:
    """Show the app's and the database's logs (secrets masked), with timestamps, after a header
    naming the container, its image and deployment; the health probes' requests are left out
    unless --all. `conveyor logs ENV migrate`: the last deployment's migration output."""
    from conveyor.cli.remote import remote_logs
    from conveyor.config import load_config
    from conveyor.ops.local_logs import stream_logs
    from conveyor.targets.local import open_stack
    from conveyor.transport import LocalTransport

    cfg = load_config(project_dir)
    words = list(targets or [])
    env_name = LOCAL
    if words and words[0] in cfg.environment_names:
        env_name = words.pop(0)
    if cfg.environment(env_name).is_remote:
        remote_logs(cfg, env_name, words, follow=follow, since=since, tail=tail,
                    keep_all=show_all)
        return
    stack = open_stack(cfg, env_name)
    raise SystemExit(stream_logs(stack, LocalTransport(cwd=cfg.root_dir), words, follow=follow,
                                 since=since, tail=tail, write=typer.echo, keep_all=show_all,
                                 note=lambda line: typer.echo(line, err=True)))


#: `conveyor status`'s exit codes (conveyor.reports.status; docs/exit-codes.md)
STATUS_EXIT_CODES = ("Exit codes: 0 every environment named is healthy; otherwise the worst "
                     "of: the error that kept a status from being read (2 a secret not set, 4 "
                     "host unreachable, 21 host key refused, ...); 20 (7 locally) database not "
                     "running; 9 app not running or unhealthy; 8 applied migrations edited or "
                     "missing (blocking drift).")


@app.command("status", epilog=STATUS_EXIT_CODES)
def status(
    envs: Annotated[Optional[list[str]], typer.Argument(  # noqa: UP045 - typer needs it
        help="Environments (default: local).", show_default=False)] = None,
    project_dir: ProjectDir = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Containers and their health, the app's health check, applied and pending migrations,
    drift between the migration files and the database. Each environment's status is printed;
    the exit code is non-zero when one is not healthy (below)."""
    import json
    from concurrent.futures import Future, ThreadPoolExecutor

    from rich.console import Console

    from conveyor.cli.remote import remote_status
    from conveyor.cli.remote_view import print_remote_status, problem_line
    from conveyor.config import load_config
    from conveyor.reports.status import worst_code

    cfg = load_config(project_dir)
    names = list(dict.fromkeys(envs or [LOCAL]))
    # remote environments are queried in parallel (conveyor.cli.remote), printed in order
    remote_names = [n for n in names if cfg.environment(n).is_remote]
    pending: dict[str, Future[dict[str, Any]]] = {}
    if remote_names:
        pool = ThreadPoolExecutor(max_workers=len(remote_names))
        pending = {n: pool.submit(remote_status, cfg, n, quiet=True) for n in remote_names}
        pool.shutdown(wait=False)
    console = Console(highlight=False, soft_wrap=True)
    reports: dict[str, Any] = {}
    for name in names:
        if name in pending:
            reports[name] = data = pending[name].result()
            if not as_json:
                print_remote_status(data)
            continue
        reports[name] = data = _local_status(cfg, name)
        if not as_json:
            for line in _local_status_lines(data):
                console.print(line)
            if not data.get("error") and data.get("problems"):
                console.print(problem_line(data))
    if as_json:
        # `conveyor status --json`: the local object; with environments named: keyed by name
        typer.echo(json.dumps(reports if envs else reports[LOCAL], indent=2, default=str))
    code = worst_code(p for d in reports.values() for p in d.get("problems") or [])
    if code:
        raise SystemExit(code)


def _local_status(cfg: Any, name: str) -> dict[str, Any]:
    """The local environment's status; an error that keeps it from being read (no Docker
    engine, a secret not set) is kept as data with its exit code, like a remote one's."""
    from conveyor.cli.remote_view import error_kind
    from conveyor.ops.local_status import gather_status
    from conveyor.targets.local import open_stack
    from conveyor.transport import LocalTransport

    try:
        stack = open_stack(cfg, name)
        return stack.redactor(gather_status(stack, LocalTransport(cwd=cfg.root_dir)))
    except ConveyorError as exc:
        return {"environment": name, "kind": "local", "error": str(exc),
                "error_kind": error_kind(exc), "hint": exc.hint,
                "problems": [{"code": exc.exit_code, "text": str(exc)}],
                "exit_code": exc.exit_code}


def _local_status_lines(d: dict[str, Any]) -> list[str]:
    from rich.markup import escape

    from conveyor.reports.local import status_lines

    if not d.get("error"):
        return status_lines(d)
    lines = [f"[bold]{escape(d['environment'])}[/bold]:",
             f"  [red]{escape(d['error_kind'])}[/red]: {escape(d['error'])}"]
    if d.get("hint"):
        lines.append(f"  [yellow]hint[/yellow]: {escape(d['hint'])}")
    return lines
