"""`conveyor backup ENV`: lock (the backup is consistent with no deployment running), dump,
verify, keep; unlock (also when the backup failed)."""

from __future__ import annotations

import time

from conveyor.plan import EventSink, Plan, PlanResult, execute
from conveyor.records import DeploymentRecord, actor
from conveyor.state.deploy import DeployState
from conveyor.steps.backup import BackupOptions, backup_step, new_backup_id
from conveyor.steps.lock import database_running_step, lock_info, lock_step, unlock_step
from conveyor.targets.remote import Remote


def backup_plan(remote: Remote) -> tuple[Plan[DeployState], DeployState, str]:
    bid = new_backup_id()
    plan = Plan(f"backup {remote.name}", [
        lock_step(remote, lock_info(bid, None, f"backup {remote.name}"), require_db=False),
        *([database_running_step(remote)] if remote.managed_db else []),
        backup_step(remote, bid, BackupOptions(reason="manual (conveyor backup)")),
        unlock_step(remote),
    ])
    record = DeploymentRecord(id=bid, app=remote.app.name, env=remote.name, kind="backup",
                              who=actor(), started_at=time.time(), image="")
    return plan, DeployState(remote, record), bid


def run_backup(remote: Remote, plan: Plan[DeployState], st: DeployState,
               emit: EventSink) -> PlanResult:
    result = execute(plan, st, emit, transport=remote.transport, raise_on_failure=False)
    if result.error is not None and st.lock_id:
        execute(Plan(plan.name, [unlock_step(remote)]), st, emit, transport=remote.transport,
                raise_on_failure=False)
    return result
