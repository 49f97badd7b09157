"""Remote commands: build, push, setup, deploy, history.

Thin: load the config, build a plan (`conveyor.plans.*`), print it (`--dry-run`) or execute
it, render. Errors are raised and rendered once by `conveyor.cli.run`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.app import ProjectDir, app
from conveyor.cli.common import (
    AsJson,
    DryRun,
    EnvArg,
    emitter,
    load,
    print_plan,
    renderer,
    warn_allow_drift,
)
from conveyor.cli.remote_view import remote_logs, remote_status  # noqa: F401 (cli.local)
from conveyor.errors import ConfigError, TestsFailed
from conveyor.plan import execute
from conveyor.targets.remote import Remote
from conveyor.transport import SshTransport

# --------------------------------------------------------------------------- build / push


@app.command("build")
def build(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    tag: Annotated[str | None, typer.Option("--tag", help="Tag instead of the commit.")] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Build the app image, tagged <registry>/<image>:<commit>[-dirty] and labelled with the
    git revision."""
    from conveyor.plans.build import BuildState, build_plan

    cfg = load(project_dir)
    plan, ref = build_plan(cfg, tag=tag)
    r = renderer(ctx, as_json)
    if dry_run:
        print_plan(r, plan.describe(), f"build {ref}")
        return
    st = BuildState()
    execute(plan, st, emitter(r))
    r.result({"image": ref, "image_id": st.image_id or None},
             f"[green]built[/green] {ref}")


@app.command("push")
def push(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    image: Annotated[str | None, typer.Option(
        "--image", help="Local image to push (default: the one built for this revision).")] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Push the app image to the registry and record the digest it got (in .conveyor/)."""
    from conveyor.plans.build import BuildState, default_push_ref, push_plan

    cfg = load(project_dir)
    ref = image or default_push_ref(cfg)
    plan = push_plan(cfg, ref)
    r = renderer(ctx, as_json)
    if dry_run:
        print_plan(r, plan.describe(), f"push {ref}")
        return
    st = BuildState()
    execute(plan, st, emitter(r))
    pushed = st.pushed
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
    from conveyor.plans.setup import setup_plan, setup_state

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    plan = setup_plan(remote)
    r = renderer(ctx, as_json, remote.redactor)
    if dry_run:
        print_plan(r, plan.describe(), plan.name)
        return
    try:
        execute(plan, setup_state(remote), emitter(r), transport=remote.transport)
    finally:
        remote.close()
    r.result({"env": env, "ok": True}, f"[green]{env} is set up[/green] on {remote.host}")


# --------------------------------------------------------------------------- deploy


@app.command("deploy")
def deploy(
    ctx: typer.Context,
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    image: Annotated[str | None, typer.Option(
        "--image", help="Image to deploy: REPO@sha256:... or a tag pushed from here (default: "
        "the digest `conveyor push` recorded for the current revision).")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="If another deployment holds the lock, wait for it.")] = False,
    wait_timeout: Annotated[float, typer.Option(
        "--wait-timeout", help="Seconds to wait for the lock with --wait.")] = 900.0,
    no_tests: Annotated[bool, typer.Option(
        "--no-tests", help="Skip the environment's test command.")] = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit", help="Write the tests' JUnit XML here.")] = None,
    summary: Annotated[Path | None, typer.Option(
        "--summary", help="Append a Markdown report here (e.g. $GITHUB_STEP_SUMMARY).")] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Promoted environments (prod): deploy an --image that did not pass "
        "`promote_from` (loud, recorded).")] = False,
    allow_destructive: Annotated[bool, typer.Option(
        "--allow-destructive", help="Promoted environments (prod): go on despite destructive "
        "lint findings in the pending migrations.")] = False,
    strategy: Annotated[str | None, typer.Option(
        "--strategy", help="Promoted environments (prod): recreate = stop, migrate, start for "
        "this deploy (contract migrations allowed) on a zero-downtime environment.")] = None,
    max_downtime: Annotated[float | None, typer.Option(
        "--max-downtime", metavar="SECONDS", help="Promoted environments (prod): refuse the "
        "deploy, before anything stops, when the rehearsal predicts a longer downtime.")] = None,
    allow_drift: Annotated[bool, typer.Option(
        "--allow-drift", help="Run the pending migrations even though applied migrations differ "
        "from their files (drift); loud, and recorded in the deployment record.")] = False,
) -> None:
    """Deploy an image: lock, pull by digest, migrate (temporary container of the new image),
    replace the app container, wait for health, run the tests, record, unlock.

    An environment with `promote_from` (prod) takes the prod stage instead (`conveyor promote`):
    the image that passed `promote_from`, lint, backup, stop, migrate, start, health, validate,
    automatic fallback to the previous version."""
    # ---- the prod stage (issue 6): environments promoted from another one
    if load(project_dir).environment(env).promote_from:
        from conveyor.cli.prod import deploy_promoted

        return deploy_promoted(ctx, env, project_dir, image=image, force=force,
                               allow_destructive=allow_destructive, validate=not no_tests,
                               wait=wait, wait_timeout=wait_timeout, junit=junit,
                               summary=summary, dry_run=dry_run, as_json=as_json,
                               strategy=strategy, max_downtime=max_downtime,
                               allow_drift=allow_drift)
    if force or allow_destructive or strategy or max_downtime is not None:
        raise ConfigError(f"--force, --allow-destructive, --strategy and --max-downtime are for "
                          f"promoted environments; {env} has no `promote_from`")
    # ----
    from conveyor.images import resolve_image
    from conveyor.plans.dev import deploy_plans
    from conveyor.records import markdown_summary
    from conveyor.runner.controller import run_on_host
    from conveyor.runner.job import job_for
    from conveyor.state.deploy import DeployOptions

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    img = resolve_image(cfg, image)
    opts = DeployOptions(project_dir=cfg.root_dir, wait=wait, wait_timeout=wait_timeout,
                         run_tests=not no_tests,
                         junit=junit.resolve() if junit is not None else None,
                         allow_drift=allow_drift)
    dep = deploy_plans(remote, img, opts)
    r = renderer(ctx, as_json, remote.redactor)
    if dry_run:
        print_plan(r, dep.describe(), f"deploy {img.ref} to {env} ({remote.host})")
        return
    if allow_drift:
        warn_allow_drift(r, env)
    if not r.json_mode:
        r.console.print(f"deploying [bold]{img.ref}[/bold] to [bold]{env}[/bold] "
                        f"({remote.host}), deployment {dep.record.id}")
    try:
        result = run_on_host(dep, job_for("dev", dep, opts), emitter(r), wait=wait,
                             wait_timeout=wait_timeout)
    finally:
        remote.close()
    rec = remote.redactor(dep.record.as_dict())
    transport = remote.opened_transport
    if isinstance(transport, SshTransport):
        rec["ssh_connections"] = transport.connections_opened
        rec["ssh_commands"] = transport.commands_run
        rec["ssh_sessions"] = transport.sessions_opened
    if summary is not None:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(markdown_summary(rec))
    for fin in dep.state.finalize_results:
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
    deployment_id: Annotated[str | None, typer.Argument(
        help="One deployment (its id, or `last`): steps, timings and kept output.")] = None,
    project_dir: ProjectDir = Path("."),
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many deployments.")] = 20,
    as_json: AsJson = False,
) -> None:
    """List an environment's deployments (oldest first, the newest last; why each failed one
    failed), or show one: its steps, their timings and kept output."""
    from conveyor.records import history_lines
    from conveyor.steps.record import read_history, read_record

    cfg = load(project_dir)
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
    for line in history_lines(entries):
        typer.echo(line)


def _print_record(rec: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    from conveyor.records import (
        counts_text,
        failure_reason,
        migration_output_in_order,
        test_counts,
        zoned,
    )

    c = Console(highlight=False, soft_wrap=True)
    colour = "green" if rec["result"] == "ok" else "red"
    c.print(f"[bold]deployment {rec['id']}[/bold] {rec['kind']} {rec['app']} → {rec['env']}: "
            f"[{colour}]{rec['result']}[/{colour}]")
    reason = failure_reason(rec)
    if reason:
        c.print(f"  [red]{'failed at':<15}[/red] {escape(reason[0])}: {escape(reason[1])}")
    for key in ("who", "started_at", "finished_at", "duration", "image", "revision",
                "previous_image", "url"):
        value = rec.get(key)
        if key in ("started_at", "finished_at"):
            value = zoned(value)
        elif key == "duration" and value is not None:
            value = f"{value:.2f}s"
        c.print(f"  {key:<15} {escape(str(value if value is not None else '-'))}")
    c.print(f"  {'migrations':<15} {', '.join(rec.get('migrations_applied') or []) or 'none'}")
    t = test_counts(rec)
    if t:
        counts = counts_text(t)
        c.print(f"  {'tests':<15} {'passed' if t.get('ok') else 'FAILED'}"
                + (f" ({counts})" if counts else "")
                + (f": {escape(str(t['command']))}" if t.get("command") else ""))
    if rec.get("error"):
        c.print(f"  [red]error[/red]           {escape(rec['error'])}")
    for s in rec.get("steps", []):
        st = s["status"]
        col = "green" if st == "ok" else ("yellow" if st in ("undone", "skipped") else "red")
        notes = "; ".join(s.get("notes") or [])
        c.print(f"[{col}]{st:>11}[/{col}] {s['name']:<10} {s['duration']:>7.2f}s  "
                f"{escape(notes)}")
        output = list(s.get("output") or [])
        if s["name"] in ("migrate", "revert"):
            output = migration_output_in_order(output)
        for line in output:
            c.print(f"              [dim]{escape(line)}[/dim]")
        if s.get("error"):
            c.print(f"              [red]{escape(s['error'])}[/red]")
