"""`conveyor status ENV` and `conveyor logs ENV` for a remote environment (the commands
themselves are in `conveyor.cli.local`, which hands remote environments to these)."""

from __future__ import annotations

from typing import Any

import typer

from conveyor.targets.remote import Remote

# --------------------------------------------------------------------------- status / logs


def remote_status(cfg, env_name: str, *, as_json: bool = False, quiet: bool = False
                  ) -> dict[str, Any]:
    """Gather (and unless as_json/quiet, print) one remote environment's status. An error that
    keeps the status from being read is kept as data: its message, hint, what kind of error
    (`unreachable` only for a host that cannot be reached) and its exit code
    (`conveyor.remote_status.status_data`: one round trip per host, maybe started early)."""
    from conveyor.remote_status import status_data

    data = status_data(cfg, env_name)
    if not as_json and not quiet:
        print_remote_status(data)
    return data


def error_kind(exc: Exception) -> str:
    """How `conveyor status` names an error that kept it from reading an environment."""
    from conveyor.remote_status import error_kind as kind

    return kind(exc)


def print_remote_status(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    c = Console(highlight=False, soft_wrap=True)
    c.print(f"[bold]{d['environment']}[/bold]: {d['host']}, {d['url']}")
    if d.get("error"):
        c.print(f"  [red]{escape(d.get('error_kind') or 'error')}[/red]: {escape(d['error'])}")
        if d.get("hint"):
            c.print(f"  [yellow]hint[/yellow]: {escape(d['hint'])}")
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
    if d.get("proxy"):
        c.print(f"  proxy       {escape(d['proxy'].get('name') or '-')} "
                f"{state(d['proxy'].get('state'))} ({escape(str(d['proxy'].get('image')))})")
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
    run = d.get("runner")
    if run and run.get("running"):
        c.print(f"  [yellow]deploying[/yellow]   {escape(str(run.get('what')))} by {run.get('who')} "
                f"since {run.get('since')} (deployment {run.get('deployment')}"
                + (f", step {run['step']}" if run.get("step") else "") + ")")
    elif run and run.get("interrupted"):
        c.print(f"  [red]interrupted[/red] deployment {run.get('deployment')} "
                f"({escape(str(run.get('what')))} by {run.get('who')}) stopped during "
                f"{run.get('step') or 'its start'}: the next conveyor command for "
                f"{d['environment']} recovers it")
    if d.get("lock") is not None:
        from conveyor.steps.lock import describe_holder

        c.print(f"  [yellow]locked[/yellow]      by {escape(describe_holder(d['lock']))}")
    if d.get("problems"):
        c.print(problem_line(d))


def problem_line(d: dict[str, Any]) -> str:
    """The last line of a failing environment's status: its exit code and why (rich markup)."""
    from rich.markup import escape

    from conveyor.reports.status import worst_code

    problems = d.get("problems") or []
    return (f"  [red]failing[/red]     exit {worst_code(problems)}: "
            + escape("; ".join(str(p["text"]) for p in problems)))


def remote_logs(cfg, env_name: str, services: list[str] | None = None, *,
                follow: bool = False, since: str | None = None, tail: int | None = None,
                keep_all: bool = False) -> None:
    """`conveyor logs ENV [app|db|migrate]`: container logs over SSH (streamed, redacted, with
    timestamps, after a header naming the container, its image and deployment; the health
    probes' lines left out unless keep_all); `migrate`: the last deployment's kept migration
    output."""
    from conveyor.commands import docker
    from conveyor.errors import ConveyorError
    from conveyor.ops.log_filter import HEADER_FORMAT, ProbeFilter, header_line
    from conveyor.records import migration_output_in_order
    from conveyor.remote_status import last_migrate_output

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
                lines = migration_output_in_order(lines)
                for line in lines[-tail:] if tail else lines:
                    typer.echo(remote.redactor(line))
                continue
            name = remote.app_container if service == "app" else remote.db_container
            if name is None:
                typer.echo(f"{env_name}'s database is reached by URL: no container logs")
                continue
            r = remote.transport.run(docker.inspect(name, HEADER_FORMAT), check=False,
                                     timeout=60)
            if r.returncode != 0 and "No such" in r.stderr:
                raise ConveyorError(f"no container {name} on {remote.host}",
                                    hint=f"deploy first (`conveyor deploy {env_name}`)"
                                    if service == "app" else f"`conveyor setup {env_name}`")
            typer.echo(remote.redactor(header_line(r.stdout, name)))
            probes = ProbeFilter(cfg.app.health.path,
                                 lambda line: typer.echo(remote.redactor(line)),
                                 keep_all=keep_all or service != "app", tail=tail,
                                 follow=follow)
            argv = docker.logs(name, follow=follow, since=since, tail=probes.read_tail(),
                               timestamps=True)
            r = remote.transport.run(argv, check=False, timeout=None, stream=probes)
            probes.flush()
            if r.returncode != 0 and "No such container" in r.stderr:
                raise ConveyorError(f"no container {name} on {remote.host}",
                                    hint=f"deploy first (`conveyor deploy {env_name}`)"
                                    if service == "app" else f"`conveyor setup {env_name}`")
            if probes.note():
                typer.echo(probes.note(), err=True)
    finally:
        remote.close()
