"""The prod stage with strategy = "zero-downtime": lock, pull, classify the pending migrations
(a contract one is refused), lint them, back up, migrate while the old version serves, start
the new container beside it (no published port), wait for its health at its own address, switch
the proxy, validate through it, drain, retire the old one; always: report, record, unlock.

Any failure before the retire leaves the old version serving: it never stopped, and the proxy
is switched back if it had switched. The validation runs before the old version stops (through
the proxy, on the new one), so a failing validation too costs no request.

`--strategy recreate` on such an environment (`recreate=True`): contract migrations allowed,
and stop, migrate, start as the seed lists them, behind the same proxy (a short downtime).
"""

from __future__ import annotations

import time
from typing import Any

from conveyor.errors import ConfigError
from conveyor.imageref import ImageRef
from conveyor.plan import Plan
from conveyor.plans.deployment import Deployment
from conveyor.plans.dev import acquire_steps
from conveyor.plans.prod import ProdRecord, finalize
from conveyor.records import actor, new_id
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps.app import stop_step
from conveyor.steps.backup import BackupOptions, backup_step
from conveyor.steps.classify import classify_step
from conveyor.steps.lock import lock_info
from conveyor.steps.migrate import migrate_step
from conveyor.steps.pending import pending_step
from conveyor.steps.proxy import (
    drain_step,
    health_beside_step,
    proxy_check_step,
    proxy_takeover_step,
    retire_step,
    start_beside_step,
    switch_step,
)
from conveyor.steps.tests import Verdicts
from conveyor.steps.validate import validate_step
from conveyor.targets.remote import Remote

ZD_HINT = ("the old version kept serving (it never stopped); the migrations applied before the "
           "failure stay applied: what the database holds is above")
RECREATE_HINT = "the previous version is started again; what serves and what the database holds: above"


def zero_downtime_plans(remote: Remote, image: ImageRef, opts: ProdOptions, *,
                        provenance: dict[str, Any] | None = None, kind: str = "promote",
                        deployment_id: str | None = None, verdicts: Verdicts | None = None,
                        recreate: bool = False) -> Deployment:
    did = deployment_id or new_id()
    strategy = "recreate" if recreate else "zero-downtime"
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind=kind, who=actor(),
                        started_at=time.time(), image=image.ref, revision=image.revision,
                        url=remote.url, options={"allow_destructive": opts.allow_destructive,
                                                 "validate": opts.validate,
                                                 "strategy": strategy,
                                                 **({"allow_drift": True} if opts.allow_drift
                                                    else {})})
    record.details["provenance"] = provenance or {}
    record.details["strategy"] = strategy
    lock = lock_info(did, image, f"{kind} {remote.name} {image.ref}")
    steps = acquire_steps(remote, image, lock, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps += [
        proxy_check_step(remote, recreate=recreate),
        classify_step(remote, image, allow_contract=recreate),
        pending_step(remote, image, opts),
        backup_step(remote, did, BackupOptions(reason=f"before {kind} {did} of {image.ref}",
                                               deployment=did)),
    ]
    if recreate:
        steps += [stop_step(remote), proxy_takeover_step(remote),
                  migrate_step(remote, image, did, hint=RECREATE_HINT,
                               allow_drift=opts.allow_drift)]
    else:
        steps.append(migrate_step(remote, image, did, hint=ZD_HINT,
                                  allow_drift=opts.allow_drift))
    steps += [
        start_beside_step(remote, image, did),
        health_beside_step(remote),
        switch_step(remote, did),
        validate_step(remote, opts, did, image, verdicts),
        drain_step(remote),
        retire_step(remote),
    ]
    name = f"{kind} {remote.name}"
    return Deployment(remote, DeployState(remote, record, image), Plan(name, steps),
                      finalize(remote, name))


def plans_for(remote: Remote, image: ImageRef, opts: ProdOptions, *, strategy: str | None,
              **kw: Any) -> Deployment:
    """The prod deployment for the environment's strategy (or `--strategy` for this deploy)."""
    from conveyor.plans.prod import prod_plans

    if remote.env.strategy == "zero-downtime":
        return zero_downtime_plans(remote, image, opts, recreate=strategy == "recreate", **kw)
    if strategy == "zero-downtime":
        raise ConfigError(f"{remote.name} has no proxy: --strategy zero-downtime needs the "
                          "environment's strategy = \"zero-downtime\" (and `conveyor setup`)",
                          file=remote.cfg.file, key=f"environments.{remote.name}.strategy")
    return prod_plans(remote, image, opts, **kw)


def zero_downtime_rollback(remote: Remote, target: ImageRef, opts: ProdOptions, *,
                           info: dict[str, Any] | None = None, deployment_id: str | None = None,
                           verdicts: Verdicts | None = None) -> Deployment:
    """`conveyor rollback` behind the proxy: the older image started beside, health, switch,
    validate, drain, retire; with --migrations: back up, stop, revert first (a downtime)."""
    from conveyor.steps.revert import revert_step, rollback_plan_step

    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind="rollback",
                        who=actor(), started_at=time.time(), image=target.ref,
                        revision=target.revision, url=remote.url,
                        options={"migrations": opts.migrations, "validate": opts.validate,
                                 "strategy": "zero-downtime"})
    record.details["rollback"] = info or {}
    lock = lock_info(did, target, f"rollback {remote.name} to {target.ref}")
    steps = acquire_steps(remote, target, lock, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps.append(rollback_plan_step(remote, target, opts))
    if opts.migrations:
        steps += [backup_step(remote, did, BackupOptions(
            reason=f"before rollback {did} (--migrations) to {target.ref}", deployment=did)),
            stop_step(remote), revert_step(remote, did)]
    steps += [start_beside_step(remote, target, did), health_beside_step(remote),
              switch_step(remote, did), validate_step(remote, opts, did, target, verdicts),
              drain_step(remote), retire_step(remote)]
    name = f"rollback {remote.name}"
    return Deployment(remote, DeployState(remote, record, target), Plan(name, steps),
                      finalize(remote, name))
