"""Prod commands: promote (and `conveyor deploy ENV` for an environment with `promote_from`),
rollback, backup, backups, restore.

Thin: load the config, build the plan (`conveyor.plans.prod`, `rollback`, `restore`, `backup`), print
it (`--dry-run`) or execute it, render; after a failure, say what serves and what the database
holds, then raise the error (rendered once by `conveyor.cli.run`, with its exit code).
"""

from __future__ import annotations

import sys
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
from conveyor.errors import ConfigError, ConveyorError
from conveyor.runner.controller import run_on_host
from conveyor.runner.job import job_for
from conveyor.state.deploy import ProdOptions
from conveyor.steps.report import outcome_text
from conveyor.targets.remote import Remote

# steps whose output is shown as it happens (the others: with --verbose)
STREAMED = {"plan", "rehearse", "migrate", "revert", "validate"}

Force = Annotated[bool, typer.Option(
    "--force", help="Deploy an --image that did not pass the environment it is promoted from "
    "(loud; the record says so).")]
AllowDestructive = Annotated[bool, typer.Option(
    "--allow-destructive", help="Go on when the lint finds destructive (or failing) statements "
    "in the pending migrations (after a review; the backup still runs first).")]
NoValidate = Annotated[bool, typer.Option(
    "--no-validate", "--no-tests", help="Skip the validate_command (the HTTP checks still run).")]
Wait = Annotated[bool, typer.Option("--wait", help="If another deployment holds the lock, wait.")]
WaitTimeout = Annotated[float, typer.Option("--wait-timeout", help="Seconds to wait for the lock.")]
Junit = Annotated[Path | None, typer.Option("--junit", help="The validation's JUnit XML "
                                               "(validate_command is pytest).")]
Summary = Annotated[Path | None, typer.Option(
    "--summary", help="Append a Markdown report here (e.g. $GITHUB_STEP_SUMMARY).")]
MaxDowntime = Annotated[float | None, typer.Option(
    "--max-downtime", metavar="SECONDS", help="Refuse the deploy (before anything stops) when "
    "the rehearsal predicts a longer downtime (its migration time + the last stop/start/health)"
    ".")]
Strategy = Annotated[str | None, typer.Option(
    "--strategy", help="recreate: for this deploy, stop, migrate, start (contract migrations "
    "allowed) on a zero-downtime environment. Default: the environment's strategy.")]


def _finish(r, remote, dep, result, *, what: str, success: str, as_json: bool,
            summary: Path | None = None) -> None:
    """Render the end of a prod plan: the record, what serves, the commands; raise on failure."""
    from conveyor.records import markdown_summary

    rec = remote.redactor(dep.record.as_dict())
    if summary is not None:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(markdown_summary(rec))
    for fin in dep.state.finalize_results:
        if not fin.ok:
            r.message(f"warning: {fin.plan}: {fin.error}")
    out = dep.state.outcome or {}
    if result.error is None:
        r.result({"deployment": rec} if as_json else {}, success)
        return
    if not r.json_mode:
        c = r.console
        from rich.markup import escape

        c.print(f"[bold red]{what} {rec['id']} failed[/bold red]"
                + (f" at step [bold]{out['failed_step']}[/bold]" if out.get("failed_step")
                   else ""))
        for line in outcome_text(dep.state):
            c.print("  " + escape(line))
    else:
        r.result({"deployment": rec})
    raise result.error


def _strategy(value: str | None) -> str | None:
    if value not in (None, "recreate", "zero-downtime"):
        raise ConfigError(f"--strategy: expected recreate or zero-downtime, found {value!r}")
    return value


def deploy_promoted(ctx: typer.Context | None, env: str, project_dir: Path, *,
                    max_downtime: float | None = None,
                    image: str | None = None, force: bool = False,
                    allow_destructive: bool = False, validate: bool = True, wait: bool = False,
                    wait_timeout: float = 900.0, junit: Path | None = None,
                    summary: Path | None = None, dry_run: bool = False, as_json: bool = False,
                    source: str | None = None, strategy: str | None = None,
                    allow_drift: bool = False) -> None:
    """`conveyor deploy ENV` for an environment with `promote_from` (and `conveyor promote`)."""
    from conveyor.promotion import plan_promotion

    cfg = load(project_dir)
    opts = ProdOptions(project_dir=cfg.root_dir, allow_destructive=allow_destructive,
                       validate=validate, wait=wait, wait_timeout=wait_timeout,
                       junit=junit.resolve() if junit is not None else None,
                       strategy=_strategy(strategy))
    opts.max_downtime = max_downtime
    opts.allow_drift = allow_drift
    promo = plan_promotion(cfg, env, image, opts, force=force, source=source)
    remote, img, dep, kind = promo.remote, promo.image, promo.dep, promo.kind
    r = renderer(ctx, as_json, remote.redactor)
    if promo.warning:
        if r.json_mode:
            r.message(promo.warning)
        else:
            r.console.print(f"[bold red]{promo.warning}[/bold red]")
    if dry_run:
        print_plan(r, dep.describe(), f"{kind} {img.ref} to {env} ({remote.host})")
        return
    if allow_drift:
        warn_allow_drift(r, env)
    if not r.json_mode:
        r.console.print(f"{kind} [bold]{img.ref}[/bold] ({promo.origin}) to [bold]{env}[/bold] "
                        f"({remote.host}), deployment {dep.record.id}")
    try:
        result = run_on_host(dep, job_for("prod", dep, opts, provenance=promo.provenance,
                                          record_kind=kind),
                             emitter(r, STREAMED), wait=wait, wait_timeout=wait_timeout)
    finally:
        remote.close()
    done = "promoted" if kind == "promote" else "deployed"
    _finish(r, remote, dep, result, what=f"{env} {kind}", as_json=as_json, summary=summary,
            success=f"[green]{done}[/green] {img.ref} to {env} in "
            f"{(dep.record.duration or 0):.1f}s: {remote.url}")


@app.command("promote")
def promote(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The environment the image passed (e.g. dev).")],
    target: Annotated[str, typer.Argument(help="The environment to deploy it to (e.g. prod).")],
    project_dir: ProjectDir = Path("."),
    image: Annotated[str | None, typer.Option(
        "--image", help="A specific image (REPO@sha256:... or a tag pushed from here); it must "
        "have passed SOURCE unless --force.")] = None,
    force: Force = False,
    allow_destructive: AllowDestructive = False,
    no_validate: NoValidate = False,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900.0,
    junit: Junit = None,
    max_downtime: MaxDowntime = None,
    summary: Summary = None,
    strategy: Strategy = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Deploy to TARGET the image that last passed SOURCE (exact digest): lock, pull, plan and
    lint the migrations, back up, stop the app, migrate, start, health, validate; on any
    failure the previous version serves again. Same as `conveyor deploy TARGET`."""
    cfg = load(project_dir)
    declared = cfg.environment(target).promote_from
    if declared and declared != source:
        raise ConfigError(f"{target} is promoted from {declared}, not {source}",
                          file=cfg.file, key=f"environments.{target}.promote_from",
                          hint=f"conveyor promote {declared} {target}")
    cfg.environment(source)
    deploy_promoted(ctx, target, project_dir, max_downtime=max_downtime, image=image, force=force,
                    allow_destructive=allow_destructive, validate=not no_validate, wait=wait,
                    wait_timeout=wait_timeout, junit=junit, summary=summary, dry_run=dry_run,
                    as_json=as_json, source=source, strategy=strategy)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    to: Annotated[str | None, typer.Option(
        "--to", help="Go back to this deployment's image (default: the image that served before "
        "the deployment of the serving one).")] = None,
    migrations: Annotated[bool, typer.Option(
        "--migrations", help="Also revert the applied migrations the target image does not have "
        "(their down.sql, from the image that applied them; a backup is taken first).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Roll back even to a version older than a contract migration applied "
        "since (it meets a schema it does not know).")] = False,
    no_validate: NoValidate = False,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900.0,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Go back to a previous image (same steps as a deployment: pull, stop, [revert], start,
    health, validate; on failure what served keeps serving)."""
    from conveyor.plans.rollback import rollback_plans, rollback_target

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    try:
        target, info = rollback_target(remote, to)
        from conveyor.steps.classify import rollback_guard
        from conveyor.steps.record import read_history

        warning = rollback_guard(remote, read_history(remote, 5000), target, info.get("to"),
                                 force=force, migrations=migrations)
        if warning:
            info["forced"] = warning
        opts = ProdOptions(project_dir=cfg.root_dir, validate=not no_validate, wait=wait,
                           wait_timeout=wait_timeout, migrations=migrations)
        dep = rollback_plans(remote, target, opts, info=info)
        r = renderer(ctx, as_json, remote.redactor)
        if warning:
            r.message(warning)
        if dry_run:
            print_plan(r, dep.describe(), f"rollback {env} to {target.ref} ({remote.host})")
            return
        if not r.json_mode:
            r.console.print(f"rolling [bold]{env}[/bold] back to [bold]{target.ref}[/bold]"
                            + (f" (deployment {info['to']})" if info.get("to") else "")
                            + (", reverting the migrations it does not have" if migrations
                               else "") + f", deployment {dep.record.id}")
        result = run_on_host(dep, job_for("rollback", dep, opts, info=info),
                             emitter(r, STREAMED), wait=wait, wait_timeout=wait_timeout)
    finally:
        remote.close()
    reverted = dep.state.migrations_reverted
    _finish(r, remote, dep, result, what=f"{env} rollback", as_json=as_json,
            success=f"[green]rolled back[/green] {env} to {target.ref}"
            + (f"; reverted {', '.join(reverted)}" if reverted else "") + f": {remote.url}")


@app.command("backup")
def backup(
    ctx: typer.Context,
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    wait: Wait = False,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Back up the environment's database now (pg_dump custom format, verified, kept on the
    host under backup.dir with the environment's retention)."""
    from conveyor.plans.backup import backup_plan, run_backup
    from conveyor.steps.backup import human_size, require_managed_db

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    require_managed_db(remote)
    plan, st, _bid = backup_plan(remote)
    r = renderer(ctx, as_json, remote.redactor)
    if dry_run:
        print_plan(r, plan.describe(), plan.name)
        return
    try:
        result = run_backup(remote, plan, st, emitter(r))
    finally:
        remote.close()
    if result.error is not None:
        raise result.error
    meta = st.backup or {}
    r.result({"backup": meta}, f"[green]backed up[/green] {env}: {meta['id']} "
             f"({meta['file']}, {human_size(meta['size'])})")


@app.command("backups")
def backups(
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    as_json: AsJson = False,
) -> None:
    """List the environment's backups (oldest first)."""
    import json

    from conveyor.steps.backup import backup_dir, human_size, list_backups, require_managed_db

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    require_managed_db(remote)
    try:
        items = list_backups(remote)
    finally:
        remote.close()
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo(f"{env}: no backups in {backup_dir(remote)} on {remote.host}")
        return
    typer.echo(f"{cfg.app.name} {env} backups in {backup_dir(remote)} on {remote.host}, "
               "oldest first:")
    rows = [["ID", "CREATED", "SIZE", "MIGRATIONS", "REASON"]]
    for b in items:
        rows.append([b["id"], str(b.get("created_at") or "-"),
                     human_size(b["size"]) if b.get("size") is not None else "-",
                     str(len(b["migrations"])) if b.get("migrations") is not None else "-",
                     str(b.get("reason") or "-")])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


@app.command("restore")
def restore(
    ctx: typer.Context,
    env: EnvArg,
    backup_ref: Annotated[str, typer.Argument(metavar="BACKUP", help="The backup's id (from "
                                              "`conveyor backups ENV`) or file name.")],
    project_dir: ProjectDir = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    wait: Wait = False,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Restore the environment's database from a backup: stop the app, restore into a new
    database, swap it in, start the app and check its health; the replaced database is backed
    up first, and swapped back if anything fails."""
    from conveyor.plans.restore import restore_plans
    from conveyor.steps.backup import parse_backup_ref

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    backup_id = parse_backup_ref(remote, backup_ref)
    opts = ProdOptions(project_dir=cfg.root_dir, wait=wait)
    dep = restore_plans(remote, backup_id, opts)
    r = renderer(ctx, as_json, remote.redactor)
    if dry_run:
        print_plan(r, dep.describe(), f"restore {env} from {backup_id} ({remote.host})")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise ConveyorError(f"not restoring {env} without confirmation",
                                hint="re-run in a terminal, or pass --yes")
        db = remote.managed_database("restores")
        typer.echo(f"This replaces ALL data of {env}'s database {db.name} on "
                   f"{remote.host} with backup {backup_id}; the app is stopped meanwhile (the "
                   "current data is backed up first).")
        if not typer.confirm(f"Restore {env} from {backup_id}?"):
            raise typer.Exit(1)
    if not r.json_mode:
        r.console.print(f"restoring [bold]{env}[/bold] from backup [bold]{backup_id}[/bold] "
                        f"({remote.host}), deployment {dep.record.id}")
    try:
        result = run_on_host(dep, job_for("restore", dep, opts, backup_id=backup_id),
                             emitter(r, STREAMED), wait=wait)
        after = _restored_state(remote, dep.state) if result.error is None else None
    finally:
        remote.close()
    if after:
        for line in after:
            r.message(line)
    _finish(r, remote, dep, result, what=f"{env} restore", as_json=as_json,
            success=f"[green]restored[/green] {env} from {backup_id}")


def _restored_state(remote: Remote, st: Any) -> list[str]:
    """After a restore: does the serving image know exactly the restored migrations?"""
    import tempfile

    from conveyor.steps.image import fetch_image_migrations
    from conveyor.steps.pending import applied_now

    lines = []
    applied = applied_now(remote)
    source = st.restore_source or {}
    if applied is None:
        return [f"the applied migrations cannot be read: check `conveyor status {remote.name}`"]
    lines.append(f"the database now has {len(applied)} migration(s) applied, as in backup "
                 f"{source.get('id')}")
    image = st.serving_image
    if not image:
        return lines
    try:
        with tempfile.TemporaryDirectory(prefix="conveyor-restore-") as tmp:
            known = [m.name for m in fetch_image_migrations(remote, image, Path(tmp))]
    except ConveyorError as exc:
        return lines + [f"(cannot compare with the serving image's migrations: {exc})"]
    from conveyor.migrations import version_from_name

    lacking = [n for n in known if version_from_name(n) not in set(applied)]
    unknown = [v for v in applied if v not in {version_from_name(n) for n in known}]
    if lacking:
        lines.append(f"the serving version ({image}) has migrations the restored database "
                     f"lacks: {', '.join(lacking)}. It must cope with the older schema; "
                     f"`conveyor deploy {remote.name}` applies them again, `conveyor rollback "
                     f"{remote.name}` goes back to an older version")
    if unknown:
        lines.append(f"the restored database has migrations the serving version does not "
                     f"know: {', '.join(unknown)}")
    if not lacking and not unknown:
        lines.append("the serving version knows exactly these migrations")
    return lines


@app.command("rehearse")
def rehearse_cmd(
    ctx: typer.Context,
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    image: Annotated[str | None, typer.Option(
        "--image", help="The image to rehearse (REPO@sha256:... or a tag pushed from here; it "
        "need not have passed anything: nothing is deployed). Default: what `conveyor deploy "
        "ENV` would promote.")] = None,
    allow_destructive: AllowDestructive = False,
    max_downtime: MaxDowntime = None,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900.0,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Rehearse a deploy of ENV now (e.g. from CI before a merge), without deploying: lock, pull,
    plan and lint, a fresh backup, the pending migrations on a scratch restore of it, unlock.
    Reports each migration's duration and locks and the predicted downtime; fails as the deploy
    would (a migration failing on prod's data: exit 8)."""
    from conveyor.plans.rehearse import rehearse_plans, report_lines
    from conveyor.promotion import choose_image

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    try:
        remote.managed_database("rehearsals")
        img, provenance = choose_image(cfg, env, image, force=image is not None)
        opts = ProdOptions(project_dir=cfg.root_dir, allow_destructive=allow_destructive,
                           wait=wait, wait_timeout=wait_timeout, max_downtime=max_downtime)
        dep = rehearse_plans(remote, img, opts, provenance=provenance)
        r = renderer(ctx, as_json, remote.redactor)
        if dry_run:
            print_plan(r, dep.describe(), f"rehearse {img.ref} on {env} ({remote.host})")
            return
        if not r.json_mode:
            r.console.print(f"rehearsing [bold]{img.ref}[/bold] on a restored copy of "
                            f"[bold]{env}[/bold] ({remote.host}), run {dep.record.id}")
        result = run_on_host(dep, job_for("rehearse", dep, opts, provenance=provenance),
                             emitter(r, STREAMED), wait=wait, wait_timeout=wait_timeout)
    finally:
        remote.close()
    info = dep.state.rehearsal or (dep.record.details or {}).get("rehearsal")
    if not r.json_mode:
        for line in report_lines(info):
            r.message(line)
    if result.error is not None:
        if r.json_mode:
            r.result({"rehearsal": info, "deployment": remote.redactor(dep.record.as_dict())})
        raise result.error
    r.result({"rehearsal": info}, f"[green]rehearsed[/green] on {env}: "
             + (f"predicted downtime {info['predicted_downtime']:.2f} s"
                if info and "predicted_downtime" in info else "no prediction"))
