"""`conveyor setup ENV`: the host prepared once. A conveyor-managed database: its network, its
volume, the PostgreSQL container (created once, never recreated by a deploy), ready to accept
connections. A database reached by URL: the state directory."""

from __future__ import annotations

import time

from conveyor.plan import Plan
from conveyor.records import DeploymentRecord, actor, new_id
from conveyor.state.deploy import DeployState
from conveyor.steps.setup import (
    database_step,
    network_step,
    ready_step,
    state_dir_step,
    volume_step,
)
from conveyor.targets.remote import Remote


def setup_plan(remote: Remote) -> Plan[DeployState]:
    if remote.managed_db:
        steps = [network_step(remote), volume_step(remote), database_step(remote),
                 ready_step(remote)]
    else:
        steps = [state_dir_step(remote)]
    if remote.env.strategy == "zero-downtime":  # the reverse proxy (steps/proxy.py)
        from conveyor.steps.proxy import proxy_network_step, proxy_setup_step

        steps += [proxy_network_step(remote)] if not remote.managed_db else []
        steps.append(proxy_setup_step(remote))
    return Plan(f"setup {remote.name}", steps)


def setup_state(remote: Remote) -> DeployState:
    record = DeploymentRecord(id=new_id(), app=remote.app.name, env=remote.name, kind="setup",
                              who=actor(), started_at=time.time(), image="")
    return DeployState(remote, record)
