"""Remote commands: build, push, setup, deploy, history, hosts, lock.

Thin: load the config, build a plan (`conveyor.stages.remote*`), print it (`--dry-run`) or
execute it, render. Errors are raised and rendered once by `conveyor.cli.run`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli import ProjectDir, app

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan (each step and the "
                                      "argv it runs) and do nothing else.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON lines).")]
EnvArg = Annotated[str, typer.Argument(help="Environment name (from conveyor.toml).",
                                       show_default=False)]

# steps whose output is shown as it happens (other steps' output: with --verbose)
_STREAMED_STEPS = {"build", "push", "migrate", "test"}


def _verbose(ctx: typer.Context | None) -> bool:
    return bool(ctx is not None and ctx.obj is not None and getattr(ctx.obj, "verbose", False))


def _renderer(ctx: typer.Context | None, as_json: bool, redactor=None):
    from conveyor.render import Renderer

    return Renderer(json_mode=as_json, verbose=_verbose(ctx), redactor=redactor)


def _emitter(renderer, streamed=_STREAMED_STEPS):
    """Pipeline events to the renderer; some steps' output lines are shown live."""

    def emit(event: dict[str, Any]) -> None:
        if (not renderer.json_mode and not renderer.verbose and event.get("event") == "output"
                and event.get("step") in streamed):
            from rich.markup import escape

            renderer.console.print(f"    [dim]{escape(renderer.redact(event['line']))}[/dim]")
            return
        renderer(event)

    return emit


def _print_plan(renderer, plans_description: list[dict[str, Any]], title: str) -> None:
    if renderer.json_mode:
        renderer.result({"dry_run": True, "title": title, "plan": plans_description})
        return
    c = renderer.console
    from rich.markup import escape

    c.print(f"[bold]{escape(title)}[/bold] (dry run: nothing is done)")
    for i, step in enumerate(plans_description, 1):
        c.print(f"[cyan]{i:>2}. {escape(step['step'])}[/cyan]")
        for cmd in step["commands"]:
            c.print(f"      {escape(renderer.redact(cmd))}")
        for cmd in step.get("undo") or []:
            c.print(f"      [yellow]undo:[/yellow] {escape(renderer.redact(cmd))}")


def _load(project_dir: Path):
    from conveyor.config import load_config

    return load_config(project_dir)


# --------------------------------------------------------------------------- build / push


@app.command("build")
def build(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    tag: Annotated[Optional[str], typer.Option("--tag", help="Tag instead of the commit.")] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Build the app image, tagged <registry>/<image>:<commit>[-dirty] and labelled with the
    git revision."""
    from conveyor.pipeline import execute
    from conveyor.stages.remote_build import build_plan

    cfg = _load(project_dir)
    plan, ref = build_plan(cfg, tag=tag)
    r = _renderer(ctx, as_json)
    if dry_run:
        _print_plan(r, plan.describe(), f"build {ref}")
        return
    result = execute(plan, _emitter(r))
    r.result({"image": ref, "image_id": result.values.get("image_id")},
             f"[green]built[/green] {ref}")


@app.command("push")
def push(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    image: Annotated[Optional[str], typer.Option(
        "--image", help="Local image to push (default: the one built for this revision).")] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Push the app image to the registry and record the digest it got (in .conveyor/)."""
    from conveyor.pipeline import execute
    from conveyor.stages.remote_build import default_push_ref, push_plan

    cfg = _load(project_dir)
    ref = image or default_push_ref(cfg)
    plan = push_plan(cfg, ref)
    r = _renderer(ctx, as_json)
    if dry_run:
        _print_plan(r, plan.describe(), f"push {ref}")
        return
    result = execute(plan, _emitter(r))
    pushed = result.values["pushed"]
    r.result(pushed, f"[green]pushed[/green] {pushed['image']}")


# --------------------------------------------------------------------------- setup


@app.command("setup")
def setup(
    ctx: typer.Context,
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Prepare an environment's host once: the network, the database volume and the
    conveyor-managed PostgreSQL container (deploys never recreate them). Idempotent."""
    from conveyor.pipeline import execute
    from conveyor.stages.remote import Remote, setup_plan

    cfg = _load(project_dir)
    remote = Remote(cfg, env)
    plan = setup_plan(remote)
    r = _renderer(ctx, as_json, remote.redactor)
    if dry_run:
        _print_plan(r, plan.describe(), plan.name)
        return
    try:
        execute(plan, _emitter(r))
    finally:
        remote.close()
    r.result({"env": env, "ok": True}, f"[green]{env} is set up[/green] on {remote.host}")


# --------------------------------------------------------------------------- deploy


@app.command("deploy")
def deploy(
    ctx: typer.Context,
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    image: Annotated[Optional[str], typer.Option(
        "--image", help="Image to deploy: REPO@sha256:... or a tag pushed from here (default: "
        "the digest `conveyor push` recorded for the current revision).")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="If another deployment holds the lock, wait for it.")] = False,
    wait_timeout: Annotated[float, typer.Option(
        "--wait-timeout", help="Seconds to wait for the lock with --wait.")] = 900.0,
    no_tests: Annotated[bool, typer.Option(
        "--no-tests", help="Skip the environment's test command.")] = False,
    junit: Annotated[Optional[Path], typer.Option(
        "--junit", help="Write the tests' JUnit XML here.")] = None,
    summary: Annotated[Optional[Path], typer.Option(
        "--summary", help="Append a Markdown report here (e.g. $GITHUB_STEP_SUMMARY).")] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Deploy an image: lock, pull by digest, migrate (temporary container of the new image),
    replace the app container, wait for health, run the tests, record, unlock."""
    from conveyor.records import markdown_summary
    from conveyor.stages.remote import (DeployOptions, Remote, TestsFailed, deploy_plans,
                                        run_deployment)
    from conveyor.stages.remote_build import resolve_image

    cfg = _load(project_dir)
    remote = Remote(cfg, env)
    img = resolve_image(cfg, image)
    opts = DeployOptions(project_dir=cfg.root_dir, wait=wait, wait_timeout=wait_timeout,
                         run_tests=not no_tests,
                         junit=junit.resolve() if junit is not None else None)
    dep = deploy_plans(remote, img, opts)
    r = _renderer(ctx, as_json, remote.redactor)
    if dry_run:
        _print_plan(r, dep.describe(), f"deploy {img.ref} to {env} ({remote.host})")
        return
    if not r.json_mode:
        r.console.print(f"deploying [bold]{img.ref}[/bold] to [bold]{env}[/bold] "
                        f"({remote.host}), deployment {dep.record.id}")
    try:
        result = run_deployment(dep, _emitter(r))
    finally:
        remote.close()
    rec = remote.redactor(dep.record.as_dict())
    transport = remote._transport
    if transport is not None and hasattr(transport, "connections_opened"):
        rec["ssh_connections"] = transport.connections_opened
        rec["ssh_commands"] = transport.commands_run
    if summary is not None:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(markdown_summary(rec))
    for fin in dep.values.get("finalize_results", []):
        if not fin.ok:
            r.message(f"warning: {fin.plan}: {fin.error}")
    line = (f"[green]deployed[/green] {img.ref} to {env} in {rec['duration']:.1f}s: {remote.url}"
            if rec["result"] == "ok" else
            f"[bold red]{rec['result']}[/bold red]: {env} deployment {rec['id']}")
    r.result({"deployment": rec} if as_json else {}, line)
    if result.error is not None:
        raise result.error
    if rec["result"] == "tests-failed":
        raise TestsFailed(f"the tests failed against {remote.url} (deployment {rec['id']})",
                          hint=f"`conveyor history {env} {rec['id']}` shows their output")


# --------------------------------------------------------------------------- history


@app.command("history")
def history(
    ctx: typer.Context,
    env: EnvArg,
    deployment_id: Annotated[Optional[str], typer.Argument(
        help="One deployment (its id, or `last`): steps, timings and kept output.")] = None,
    project_dir: ProjectDir = Path("."),
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many deployments.")] = 20,
    as_json: AsJson = False,
) -> None:
    """List an environment's deployments (newest last), or show one."""
    from conveyor.records import history_table
    from conveyor.stages.remote import Remote, read_history, read_record

    cfg = _load(project_dir)
    remote = Remote(cfg, env)
    try:
        if deployment_id:
            rec = read_record(remote, deployment_id)
        else:
            entries = read_history(remote, limit)
    finally:
        remote.close()
    if deployment_id:
        if as_json:
            typer.echo(json.dumps(rec, indent=2))
            return
        _print_record(rec)
        return
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{cfg.app.name} {env} deployments ({remote.host})")
    for col in ("id", "kind", "result", "who", "revision", "image", "duration", "migrations"):
        table.add_column(col)
    for row in history_table(entries):
        table.add_row(*row)
    Console(highlight=False).print(table)
    if not entries:
        typer.echo("no deployments recorded yet")


def _print_record(rec: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    c = Console(highlight=False, soft_wrap=True)
    colour = "green" if rec["result"] == "ok" else "red"
    c.print(f"[bold]deployment {rec['id']}[/bold] {rec['kind']} {rec['app']} → {rec['env']}: "
            f"[{colour}]{rec['result']}[/{colour}]")
    for key in ("who", "started_at", "finished_at", "duration", "image", "revision",
                "previous_image", "url"):
        c.print(f"  {key:<15} {escape(str(rec.get(key)))}")
    c.print(f"  {'migrations':<15} {', '.join(rec.get('migrations_applied') or []) or 'none'}")
    if rec.get("tests"):
        t = rec["tests"]
        c.print(f"  {'tests':<15} {'passed' if t.get('ok') else 'FAILED'} "
                f"({t.get('passed', '?')} passed, {t.get('failed', 0)} failed)")
    if rec.get("error"):
        c.print(f"  [red]error[/red]          {escape(rec['error'])}")
    for s in rec.get("steps", []):
        st = s["status"]
        col = "green" if st == "ok" else ("yellow" if st in ("undone", "skipped") else "red")
        notes = "; ".join(s.get("notes") or [])
        c.print(f"[{col}]{st:>11}[/{col}] {s['name']:<10} {s['duration']:>7.2f}s  "
                f"{escape(notes)}")
        for line in s.get("output") or []:
            c.print(f"              [dim]{escape(line)}[/dim]")
        if s.get("error"):
            c.print(f"              [red]{escape(s['error'])}[/red]")


# --------------------------------------------------------------------------- hosts

hosts_app = typer.Typer(help="Inspect and trust SSH host keys.", no_args_is_help=True)
app.add_typer(hosts_app, name="hosts")


@hosts_app.command("trust")
def hosts_trust(
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Show the host keys an environment's host presents now and, once you confirm, write them
    to the environment's known_hosts (replacing what it said about that host)."""
    from conveyor.errors import ConveyorError
    from conveyor.stages.remote import ssh_target
    from conveyor.transport import (fingerprint, key_of, known_host_lines, scan_host_keys,
                                    trust_host_keys)

    cfg = _load(project_dir)
    e = cfg.environment(env)
    if not e.is_remote:
        raise ConveyorError(f"environment {env!r} has no host")
    t = ssh_target(cfg, e)
    assert t.known_hosts
    scanned = scan_host_keys(t.host, t.port)
    if not scanned:
        raise ConveyorError(f"{t.host}:{t.port} presented no host key (is sshd running there?)")
    known = known_host_lines(t.known_hosts, t.host, t.port)
    known_keys = {key_of(k) for k in known}
    scanned_keys = {key_of(k) for k in scanned}
    typer.echo(f"{t.display} presents:")
    for line in scanned:
        mark = "known" if key_of(line) in known_keys else "NEW"
        typer.echo(f"  [{mark}] {fingerprint(line)}")
    if scanned_keys <= known_keys and known:
        typer.echo(f"all of them are already trusted in {t.known_hosts}")
        return
    if known:
        typer.echo(f"{t.known_hosts} currently trusts, for this host:")
        for line in known:
            typer.echo(f"  {fingerprint(line)}")
        typer.echo("WARNING: the host's keys changed. Trust the new ones only if you know why "
                   "(reinstalled host); otherwise this may be an attack.")
    typer.echo("Check the fingerprint out of band (e.g. `ssh-keygen -lf "
               "/etc/ssh/ssh_host_ed25519_key.pub` on the host).")
    if not yes:
        if not sys.stdin.isatty():
            raise ConveyorError("not trusting without confirmation",
                                hint="re-run in a terminal, or pass --yes after checking the "
                                "fingerprint")
        if not typer.confirm(f"Trust these keys for {t.display} in {t.known_hosts}?"):
            raise typer.Exit(1)
    trust_host_keys(t.known_hosts, t.host, t.port, scanned)
    typer.echo(f"trusted: wrote {len(scanned)} key(s) for {t.display} to {t.known_hosts}")


@hosts_app.command("check")
def hosts_check(
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
) -> None:
    """Connect to the environment's host (host key verified) and report its Docker engine."""
    from conveyor.commands import docker
    from conveyor.stages.remote import Remote

    cfg = _load(project_dir)
    remote = Remote(cfg, env)
    try:
        r = remote.transport.run(docker.info("{{.ServerVersion}} {{.Name}}"), timeout=60)
    finally:
        remote.close()
    typer.echo(f"{remote.host}: host key verified; Docker {r.stdout.strip()}")


# --------------------------------------------------------------------------- lock

lock_app = typer.Typer(help="An environment's deploy lock.", no_args_is_help=True)
app.add_typer(lock_app, name="lock")


@lock_app.command("status")
def lock_status_cmd(env: EnvArg, project_dir: ProjectDir = Path("."),
                    as_json: AsJson = False) -> None:
    """Who holds the environment's deploy lock, if anyone."""
    from conveyor.stages.remote import Remote, describe_holder, lock_status

    cfg = _load(project_dir)
    remote = Remote(cfg, env)
    try:
        holder = lock_status(remote)
    finally:
        remote.close()
    if as_json:
        typer.echo(json.dumps({"env": env, "locked": holder is not None, "holder": holder}))
    elif holder is None:
        typer.echo(f"{env} is not locked")
    else:
        typer.echo(f"{env} is locked by {describe_holder(holder)}")


@lock_app.command("acquire")
def lock_acquire_cmd(
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    message: Annotated[str, typer.Option("--message", "-m", help="What for.")] = "maintenance",
) -> None:
    """Take the deploy lock by hand (deploys are refused until `conveyor lock release`)."""
    from conveyor.records import new_id
    from conveyor.stages.remote import LockHeld, Remote, describe_holder, lock_info, try_lock

    cfg = _load(project_dir)
    remote = Remote(cfg, env)
    try:
        info = lock_info(new_id(), None, message)
        acquired, data = try_lock(remote, info)
    finally:
        remote.close()
    if not acquired:
        raise LockHeld(f"{env} is locked by {describe_holder(data)}", holder=data)
    typer.echo(f"{env} locked by {info['who']} ({info['id']}): {message}")


@lock_app.command("release")
def lock_release_cmd(env: EnvArg, project_dir: ProjectDir = Path(".")) -> None:
    """Release the deploy lock whoever holds it (after a deployment died, or `lock acquire`)."""
    from conveyor.stages.remote import Remote, describe_holder, force_unlock, lock_status

    cfg = _load(project_dir)
    remote = Remote(cfg, env)
    try:
        holder = lock_status(remote)
        if holder is not None:
            force_unlock(remote)
    finally:
        remote.close()
    typer.echo(f"{env} was not locked" if holder is None
               else f"released the lock of {env} (held by {describe_holder(holder)})")
