"""`conveyor rehearse ENV`: the rehearsal of a deploy, on demand (e.g. from CI before a merge):
lock, pull the image the deploy would promote, plan and lint its pending migrations, take a
fresh backup (row counts), rehearse them on a scratch restore of it (whatever `rehearse` says),
report the predicted downtime; always: record, unlock. Nothing serving is touched."""

from __future__ import annotations

import time
from typing import Any

from conveyor.imageref import ImageRef
from conveyor.plan import Plan
from conveyor.plans.deployment import Deployment
from conveyor.plans.dev import acquire_steps
from conveyor.plans.prod import ProdRecord
from conveyor.records import actor, new_id
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps.backup import BackupOptions, backup_step
from conveyor.steps.lock import lock_info
from conveyor.steps.pending import pending_step
from conveyor.steps.record import record_step
from conveyor.steps.rehearse import rehearse_step
from conveyor.targets.remote import Remote


def rehearse_plans(remote: Remote, image: ImageRef, opts: ProdOptions, *,
                   provenance: dict[str, Any] | None = None,
                   deployment_id: str | None = None) -> Deployment:
    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind="rehearse",
                        who=actor(), started_at=time.time(), image=image.ref,
                        revision=image.revision, url=remote.url,
                        options={"allow_destructive": opts.allow_destructive,
                                 "max_downtime": opts.max_downtime})
    record.details["provenance"] = provenance or {}
    name = f"rehearse {remote.name}"
    steps = acquire_steps(remote, image, lock_info(did, image, f"{name} {image.ref}"),
                          wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps += [
        pending_step(remote, image, opts),
        backup_step(remote, did, BackupOptions(reason=f"rehearsal {did} of {image.ref}",
                                               deployment=did, rows=True)),
        rehearse_step(remote, image, did, opts, always=True),
    ]
    return Deployment(remote, DeployState(remote, record, image), Plan(name, steps),
                      Plan(f"{name}: finalize", [record_step(remote)]))


def report_lines(info: dict[str, Any] | None) -> list[str]:
    """The rehearsal's report (each migration's duration and locks; the prediction)."""
    if not info:
        return []
    if info.get("skipped"):
        lines = [f"not rehearsed: {info['skipped']}"]
    else:
        lines = [(f"rehearsed on {info.get('database')} (backup {info.get('backup')}: "
                 f"{info.get('rows')} rows in {info.get('tables')} tables, restored in "
                 f"{info.get('restore_s', 0):.2f} s)")]
    for m in info.get("migrations") or []:
        locks = ", ".join(f"{'/'.join(v)} on {k}" for k, v in (m.get("locks") or {}).items())
        waits = m.get("lock_wait_ms")
        lines.append(f"  {'ok' if m.get('ok') else 'FAILED'} {m['name']}: "
                     f"{(m.get('duration_ms') or 0) / 1000:.3f} s"
                     + (f"; lock waits {waits} ms" if waits else "")
                     + (f"; locks held: {locks}" if locks else ""))
    if info.get("failed"):
        lines.append(f"  {info['failed']}")
    if "predicted_downtime" in info:
        lines.append(f"predicted downtime of a recreate deploy: {info['predicted_downtime']:.2f}"
                     f" s ({info.get('basis')})")
    return lines
