"""`conveyor restore ENV BACKUP`: lock, note the serving image, verify the backup, take a safety
backup, stop the app, restore into a new database, swap it in, start the app, check its health,
drop the replaced database; always: report, record, unlock. A failure swaps the old one back."""

from __future__ import annotations

import time

from conveyor.commands import docker
from conveyor.plan import Plan, Step, StepIO
from conveyor.plans.deployment import Deployment
from conveyor.plans.prod import ProdRecord
from conveyor.records import actor, new_id
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps.app import stop_step
from conveyor.steps.backup import BackupOptions, backup_path, backup_step, require_managed_db
from conveyor.steps.health import health_step
from conveyor.steps.lock import database_running_step, lock_info, lock_step
from conveyor.steps.record import record_step
from conveyor.steps.restore import cleanup_step, restore_steps, verify_step
from conveyor.targets.remote import Remote


def _app_steps(remote: Remote) -> list[Step[DeployState]]:
    """Start the app again (only if the stop step stopped it), then its health check."""
    start = docker.start(remote.app_container)
    stop_app = docker.stop(remote.app_container, remote.app.stop_timeout)
    health = health_step(remote)

    def start_app(st: DeployState, io: StepIO) -> None:
        if not st.stopped_old:
            io.note("the app was not running: not started")
            return
        io.run(start, timeout=300)
        st.restarted = True
        io.note(f"started {remote.app_container}")

    def start_undo(st: DeployState, io: StepIO) -> None:
        if st.restarted:
            io.run(stop_app, check=False, timeout=300)

    def check(st: DeployState, io: StepIO) -> None:
        if not st.restarted:
            io.note("skipped (the app was not running)")
            return
        health.action(st, io)

    return [Step("start", start_app, describe=[start], undo=start_undo, undo_describe=[stop_app],
                 reads=("stopped_old",), writes=("restarted",)),
            Step("health", check, describe=[f"GET {remote.health_url}"], reads=("restarted",))]


def restore_plans(remote: Remote, backup_id: str, opts: ProdOptions, *,
                  deployment_id: str | None = None) -> Deployment:
    require_managed_db(remote, "restores")
    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind="restore",
                        who=actor(), started_at=time.time(), image="", url=remote.url,
                        options={"backup": backup_id})
    record.details["restore"] = {"backup": backup_id, "file": backup_path(remote, backup_id)}

    def note_image(st: DeployState, io: StepIO) -> None:
        st.record.image = st.serving_image or ""

    steps = [
        lock_step(remote, lock_info(did, None, f"restore {remote.name} from {backup_id}"),
                  require_db=False),
        database_running_step(remote),
        Step("inspect", note_image, describe=["(the serving image, for the record)"],
             reads=("current",)),
        verify_step(remote, backup_id),
        backup_step(remote, did, BackupOptions(reason=f"before restore {did} of {backup_id}",
                                               deployment=did, protect=backup_id)),
        stop_step(remote),
        *restore_steps(remote, backup_id, did),
        *_app_steps(remote),
        cleanup_step(remote, did),
    ]
    return Deployment(remote, DeployState(remote, record), Plan(f"restore {remote.name}", steps),
                      Plan(f"restore {remote.name}: finalize", [record_step(remote)]))
