"""The prod stage (`conveyor deploy prod`, `conveyor promote dev prod`), as the seed lists it:
lock, pull the exact digest that passed dev (before anything stops), plan and lint the pending
migrations, back up the database (verified), create the new container, stop the app (Postgres
keeps running), migrate through a temporary container of the new image, start the new app,
health-check and validate it; always: report what serves and what the database holds, record,
unlock. On any failure the completed steps are undone in reverse: the previous version serves
again."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from conveyor.imageref import ImageRef
from conveyor.plan import Plan
from conveyor.plans.deployment import Deployment
from conveyor.plans.dev import acquire_steps
from conveyor.records import DeploymentRecord, actor, new_id
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps.app import prepare_step, start_step, stop_step
from conveyor.steps.backup import BackupOptions, backup_step
from conveyor.steps.health import health_step
from conveyor.steps.lock import lock_info
from conveyor.steps.migrate import PROD_HINT, migrate_step
from conveyor.steps.pending import pending_step
from conveyor.steps.record import record_step
from conveyor.steps.rehearse import rehearse_step
from conveyor.steps.report import report_step
from conveyor.steps.tests import Verdicts
from conveyor.steps.validate import validate_step
from conveyor.targets.remote import Remote


@dataclass
class ProdRecord(DeploymentRecord):
    """A deployment record with the prod stage's details: where the image comes from, the
    migration plan and its lint, the backup, what was reverted, and the outcome (what serves,
    what the database holds, the commands that go further back)."""

    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "details": self.details}

    def summary(self) -> dict[str, Any]:
        d = super().summary()
        details = dict(self.details)
        lint = details.get("lint")
        if isinstance(lint, dict):  # the history line keeps the counts, not the findings
            details["lint"] = lint.get("summary")
        d["details"] = details
        return d


def finalize(remote: Remote, name: str) -> Plan[DeployState]:
    return Plan(f"{name}: finalize", [report_step(remote), record_step(remote)])


def prod_plans(remote: Remote, image: ImageRef, opts: ProdOptions, *,
               provenance: dict[str, Any] | None = None, kind: str = "promote",
               deployment_id: str | None = None,
               verdicts: Verdicts | None = None) -> Deployment:
    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind=kind, who=actor(),
                        started_at=time.time(), image=image.ref, revision=image.revision,
                        url=remote.url, options={"allow_destructive": opts.allow_destructive,
                                                 "validate": opts.validate,
                                                 **({"allow_drift": True} if opts.allow_drift
                                                    else {})})
    record.details["provenance"] = provenance or {}
    lock = lock_info(did, image, f"{kind} {remote.name} {image.ref}")
    steps = acquire_steps(remote, image, lock, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps += [
        pending_step(remote, image, opts),
        backup_step(remote, did, BackupOptions(reason=f"before {kind} {did} of {image.ref}",
                                               deployment=did,
                                               rows=remote.env.rehearse != "never")),
        *([rehearse_step(remote, image, did, opts)] if remote.env.rehearse != "never" else []),
        prepare_step(remote, image, did),
        stop_step(remote),
        migrate_step(remote, image, did, hint=PROD_HINT, allow_drift=opts.allow_drift),
        start_step(remote),
        health_step(remote),
        validate_step(remote, opts, did, image, verdicts),
    ]
    return Deployment(remote, DeployState(remote, record, image),
                      Plan(f"{kind} {remote.name}", steps), finalize(remote, f"{kind} {remote.name}"))
