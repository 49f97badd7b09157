"""SSH host keys (`conveyor hosts trust|check ENV`) and the deploy lock by hand
(`conveyor lock status|acquire|release ENV`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.app import ProjectDir, app
from conveyor.cli.common import AsJson, EnvArg, load
from conveyor.targets.remote import Remote

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
    from conveyor.targets.remote import ssh_target
    from conveyor.transport import (
        fingerprint,
        key_of,
        known_host_lines,
        scan_host_keys,
        trust_host_keys,
    )

    cfg = load(project_dir)
    e = cfg.environment(env)
    if not e.is_remote:
        raise ConveyorError(f"environment {env!r} has no host")
    t = ssh_target(cfg, env)
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

    cfg = load(project_dir)
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
    """Who holds the environment's deploy lock, if anyone: a running deployment (its runner on
    the host), a lock taken by hand, or a deployment that died (recovered by the next command)."""
    from conveyor.runner.controller import holder as runner_holder
    from conveyor.runner.controller import runner_state
    from conveyor.steps.lock import describe_holder, lock_status

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    try:
        runner = runner_state(remote)
        holder = lock_status(remote)
    finally:
        remote.close()
    live = runner is not None and runner["running"]
    if live and runner is not None:
        holder = runner_holder(runner["labels"])
    if as_json:
        typer.echo(json.dumps({"env": env, "locked": holder is not None, "holder": holder,
                               "runner": "running" if live else (
                                   "stopped" if runner is not None else None)}))
    elif holder is None:
        typer.echo(f"{env} is not locked")
    elif live:
        typer.echo(f"{env} is locked by {describe_holder(holder)} (its runner is running on "
                   f"{remote.host}; it ends on its own)")
    else:
        typer.echo(f"{env} is locked by {describe_holder(holder)}")


@lock_app.command("acquire")
def lock_acquire_cmd(
    env: EnvArg,
    project_dir: ProjectDir = Path("."),
    message: Annotated[str, typer.Option("--message", "-m", help="What for.")] = "maintenance",
) -> None:
    """Take the deploy lock by hand (deploys are refused until `conveyor lock release`)."""
    from conveyor.errors import LockHeld
    from conveyor.records import new_id
    from conveyor.steps.lock import describe_holder, lock_info, try_lock

    cfg = load(project_dir)
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
    """Release the deploy lock taken by hand (`lock acquire`) or left by a dead holder. A
    running deployment's lock is not released: it ends on its own."""
    from conveyor.errors import LockHeld
    from conveyor.runner.controller import holder as runner_holder
    from conveyor.runner.controller import runner_state
    from conveyor.steps.lock import describe_holder, force_unlock, lock_status

    cfg = load(project_dir)
    remote = Remote(cfg, env)
    try:
        runner = runner_state(remote)
        if runner is not None and runner["running"]:
            raise LockHeld(f"{env} is locked by a running deployment: "
                           f"{describe_holder(runner_holder(runner['labels']))}",
                           hint="it ends on its own (Ctrl-C in its controller undoes it)")
        holder = lock_status(remote)
        if holder is not None:
            force_unlock(remote)
    finally:
        remote.close()
    typer.echo(f"{env} was not locked" if holder is None
               else f"released the lock of {env} (held by {describe_holder(holder)})")


