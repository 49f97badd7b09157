"""`conveyor rollback ENV [--to ID] [--migrations]`: the same steps as a prod deployment with
an older image: lock, pull, plan what happens to the schema, [back up], create, stop, [revert
the migrations the target lacks], start, health, validate; always: report, record, unlock."""

from __future__ import annotations

import json
import time
from typing import Any

from conveyor.commands import docker
from conveyor.errors import NoRollbackTarget
from conveyor.imageref import ImageRef
from conveyor.plan import Plan
from conveyor.plans.deployment import Deployment
from conveyor.plans.dev import acquire_steps
from conveyor.plans.prod import ProdRecord, finalize
from conveyor.records import actor, new_id
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps.app import prepare_step, start_step, stop_step
from conveyor.steps.backup import BackupOptions, backup_step
from conveyor.steps.health import health_step
from conveyor.steps.lock import lock_info
from conveyor.steps.record import read_history
from conveyor.steps.revert import revert_step, rollback_plan_step
from conveyor.steps.tests import Verdicts
from conveyor.steps.validate import validate_step
from conveyor.targets.remote import Remote


def current_app(remote: Remote) -> dict[str, Any] | None:
    r = remote.transport.run(docker.inspect(remote.app_container, "{{json .Config.Labels}}"),
                             check=False, timeout=60)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout) or {}
    except ValueError:
        return None


def rollback_target(remote: Remote, to: str | None) -> tuple[ImageRef, dict[str, Any]]:
    """`--to DEPLOYMENT`'s image, else the image that served before the serving one's deploy."""
    entries = read_history(remote, 5000)
    ok = [e for e in entries if e.get("result") == "ok" and e.get("image")]
    if to:
        match = [e for e in entries if e.get("id") == to]
        if not match:
            raise NoRollbackTarget(f"no deployment {to} on {remote.name}",
                                   hint=f"`conveyor history {remote.name}` lists them")
        e = match[-1]
        if e.get("result") != "ok":
            raise NoRollbackTarget(f"deployment {to} did not succeed ({e.get('result')}): its "
                                   "image never passed validation here",
                                   hint=f"pick a successful one from `conveyor history "
                                   f"{remote.name}`")
        return ImageRef.parse(e["image"], revision=e.get("revision")), {"to": to}
    current = (current_app(remote) or {}).get("conveyor.image")
    if not current:
        raise NoRollbackTarget(f"no app container of {remote.name} on {remote.host} (or it "
                               "was not deployed by conveyor): nothing to roll back from",
                               hint="pass --to DEPLOYMENT")
    deps = [e for e in ok if e.get("kind", "deploy") in ("deploy", "promote")
            and e["image"] == current]
    if not deps:
        raise NoRollbackTarget(f"no successful deployment of the serving image {current} is "
                               f"recorded on {remote.name}",
                               hint="pass --to DEPLOYMENT (`conveyor history` lists them)")
    d = deps[-1]
    prev = d.get("previous_image")
    if not prev:
        raise NoRollbackTarget(f"deployment {d['id']} was the first one: there is no "
                               "previous version to roll back to")
    before = [e for e in ok if e["image"] == prev and e["id"] < d["id"]]
    return (ImageRef.parse(prev, revision=d.get("previous_revision")),
            {"from_deployment": d["id"], "to": before[-1]["id"] if before else None})


def rollback_plans(remote: Remote, target: ImageRef, opts: ProdOptions, *,
                   info: dict[str, Any] | None = None, deployment_id: str | None = None,
                   verdicts: Verdicts | None = None) -> Deployment:
    if remote.env.strategy == "zero-downtime":  # behind the proxy (plans/zero_downtime.py)
        from conveyor.plans.zero_downtime import zero_downtime_rollback

        return zero_downtime_rollback(remote, target, opts, info=info,
                                      deployment_id=deployment_id, verdicts=verdicts)
    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind="rollback",
                        who=actor(), started_at=time.time(), image=target.ref,
                        revision=target.revision, url=remote.url,
                        options={"migrations": opts.migrations, "validate": opts.validate})
    record.details["rollback"] = info or {}
    lock = lock_info(did, target, f"rollback {remote.name} to {target.ref}")
    steps = acquire_steps(remote, target, lock, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps.append(rollback_plan_step(remote, target, opts))
    if opts.migrations:
        steps.append(backup_step(remote, did, BackupOptions(
            reason=f"before rollback {did} (--migrations) to {target.ref}", deployment=did)))
    steps += [prepare_step(remote, target, did), stop_step(remote)]
    if opts.migrations:
        steps.append(revert_step(remote, did))
    steps += [start_step(remote), health_step(remote),
              validate_step(remote, opts, did, target, verdicts)]
    return Deployment(remote, DeployState(remote, record, target),
                      Plan(f"rollback {remote.name}", steps),
                      finalize(remote, f"rollback {remote.name}"))
