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
    force: Annotated[bool, typer.Option(
        "--force", help="Promoted environments (prod): deploy an --image that did not pass "
        "`promote_from` (loud, recorded).")] = False,
    allow_destructive: Annotated[bool, typer.Option(
        "--allow-destructive", help="Promoted environments (prod): go on despite destructive "
        "lint findings in the pending migrations.")] = False,
) -> None:
    """Deploy an image: lock, pull by digest, migrate (temporary container of the new image),
    replace the app container, wait for health, run the tests, record, unlock.

    An environment with `promote_from` (prod) takes the prod stage instead (`conveyor promote`):
    the image that passed `promote_from`, lint, backup, stop, migrate, start, health, validate,
    automatic fallback to the previous version."""
    # ---- the prod stage (issue 6): environments promoted from another one
    if _load(project_dir).environment(env).promote_from:
        from conveyor.cli.prod import deploy_promoted

        return deploy_promoted(ctx, env, project_dir, image=image, force=force,
                               allow_destructive=allow_destructive, validate=not no_tests,
                               wait=wait, wait_timeout=wait_timeout, junit=junit,
                               summary=summary, dry_run=dry_run, as_json=as_json)
    if force or allow_destructive:
        from conveyor.errors import ConveyorError

        raise ConveyorError(f"--force and --allow-destructive are for promoted environments; "
                            f"{env} has no `promote_from`")
    # ----
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
        rec["ssh_sessions"] = getattr(transport, "sessions_opened", None)
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
    if isinstance(result.error, KeyboardInterrupt):
        raise typer.Abort()  # recorded and unlocked above; exit 130
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
    if not entries:
        typer.echo(f"{env}: no deployments recorded yet ({remote.host})")
        return
    typer.echo(f"{cfg.app.name} {env} deployments on {remote.host}, oldest first:")
    header = ["ID", "KIND", "RESULT", "WHO", "REVISION", "IMAGE", "DURATION", "MIGRATIONS"]
    rows = [header] + history_table(entries)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


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
            raise SystemExit(1)
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


# --------------------------------------------------------------------------- status / logs
# `conveyor status` and `conveyor logs` are commands of conveyor.cli.local; a remote
# environment's name is handed to these functions.


def remote_status(cfg, env_name: str, *, as_json: bool = False, quiet: bool = False
                  ) -> dict[str, Any]:
    """Gather (and unless as_json/quiet, print) one remote environment's status."""
    from conveyor.stages.remote import Remote, gather_status

    remote = Remote(cfg, env_name)
    try:
        data = gather_status(remote)
    except Exception as exc:  # noqa: BLE001 - one unreachable env must not hide the others
        from conveyor.errors import ConveyorError

        if not isinstance(exc, ConveyorError):
            raise
        data = {"environment": env_name, "host": remote.host, "url": remote.url,
                "kind": "remote", "error": str(exc), "hint": exc.hint}
    finally:
        remote.close()
    if not as_json and not quiet:
        print_remote_status(data)
    return data


def remote_print_status(cfg, env_name: str, *, data: dict[str, Any]) -> None:
    print_remote_status(data)


def print_remote_status(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    c = Console(highlight=False, soft_wrap=True)
    c.print(f"[bold]{d['environment']}[/bold]: {d['host']}, {d['url']}")
    if d.get("error"):
        c.print(f"  [red]unreachable[/red]: {escape(d['error'])}")
        return

    def state(s: str | None) -> str:
        return f"[{'green' if s == 'running' else 'red'}]{s or '-'}[/]"

    app = d["app"]
    c.print(f"  app         {escape(app['name'])} {state(app.get('state'))}"
            + (f" ({app['health']})" if app.get("health") else "")
            + (f", restarted {app['restarts']}x" if app.get("restarts") else ""))
    if app.get("image"):
        c.print(f"  image       {escape(app['image'])}")
        c.print(f"  revision    {app.get('revision') or '-'}   deployment "
                f"{app.get('deployment') or '-'}")
    db = d["db"]
    if db.get("kind") == "url":
        c.print("  database    reached by URL")
    else:
        c.print(f"  database    {escape(db['name'])} {state(db.get('state'))}"
                + (f" ({escape(db['image'])})" if db.get("image") else ""))
    h = d["health"]
    c.print(f"  health      GET {h['url']} -> "
            + (f"[green]{h['status']}[/green]" if h["ok"] else
               f"[red]{h['status'] or escape(str(h['error']))}[/red]"))
    m = d["migrations"]
    if not m["ok"]:
        c.print(f"  migrations  [yellow]unknown[/yellow]: {escape(str(m['error']))}")
    else:
        pending = ", ".join(p["name"] for p in m["pending"]) or "none"
        c.print(f"  migrations  {len(m['applied'])} applied; pending: {escape(pending)}")
        for p in m["drift"]:
            c.print(f"  [yellow]drift[/yellow]       {escape(p.get('message', str(p)))}")
        if not m["drift"]:
            c.print("  drift       none (every applied migration matches the image's files)")
    last = d.get("last_deployment")
    if last:
        colour = "green" if last.get("result") == "ok" else "red"
        c.print(f"  last deploy {last['id']} [{colour}]{last.get('result')}[/{colour}] by "
                f"{last.get('who')} at {last.get('started_at')}")
    if d.get("lock") is not None:
        from conveyor.stages.remote import describe_holder

        c.print(f"  [yellow]locked[/yellow]      by {escape(describe_holder(d['lock']))}")


def remote_logs(cfg, env_name: str, services: list[str] | None = None, *,
                follow: bool = False, since: str | None = None, tail: int | None = None) -> None:
    """`conveyor logs ENV [app|db|migrate]`: container logs over SSH (streamed, redacted);
    `migrate`: the last deployment's kept migration output."""
    from conveyor.commands import docker
    from conveyor.errors import ConveyorError
    from conveyor.stages.remote import Remote, last_migrate_output

    services = list(services or ["app"])
    unknown = [s for s in services if s not in ("app", "db", "migrate")]
    if unknown:
        raise ConveyorError(f"unknown log source(s) {', '.join(unknown)} for {env_name}",
                            hint="choose from: app, db, migrate")
    if follow and len(services) > 1:
        raise ConveyorError("--follow takes one log source", hint="e.g. `conveyor logs "
                            f"{env_name} app -f`")
    remote = Remote(cfg, env_name)
    try:
        remote.database_url()  # registers the secrets with the redactor
    except ConveyorError:
        pass
    try:
        for service in services:
            if len(services) > 1:
                typer.echo(f"==> {service} <==")
            if service == "migrate":
                rec, lines = last_migrate_output(remote)
                if rec is None:
                    typer.echo(f"no deployment of {env_name} has run migrations yet")
                    continue
                typer.echo(f"# migrate step of deployment {rec['id']} ({rec['result']}, "
                           f"{rec['started_at']})")
                for line in lines[-tail:] if tail else lines:
                    typer.echo(remote.redactor(line))
                continue
            name = remote.app_container if service == "app" else remote.db_container
            if name is None:
                typer.echo(f"{env_name}'s database is reached by URL: no container logs")
                continue
            argv = docker.logs(name, follow=follow, since=since, tail=tail)
            r = remote.transport.run(argv, check=False, timeout=None,
                                     stream=lambda line: typer.echo(remote.redactor(line)))
            if r.returncode != 0 and "No such container" in r.stderr:
                raise ConveyorError(f"no container {name} on {remote.host}",
                                    hint=f"deploy first (`conveyor deploy {env_name}`)"
                                    if service == "app" else f"`conveyor setup {env_name}`")
    finally:
        remote.close()
