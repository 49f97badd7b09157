"""The deployment record on the host: written (with the lock released in the same round trip)
at the end of every plan that took the lock, and read back by `history`, `status`, `logs`."""

from __future__ import annotations

import json
from typing import Any

from conveyor import host
from conveyor.errors import ConveyorError
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.targets.remote import Remote, tail

NOT_OURS = 3  # record.sh / unlock.sh: the lock is held by someone else (any more)


def record_argv(remote: Remote, deployment_id: str, lock_id: str = "") -> tuple[str, ...]:
    return host.argv("record", remote.state_dir, deployment_id, lock_id)


def record_step(remote: Remote) -> Step[DeployState]:
    """Write the deployment record and release the lock, in one round trip (the lock is
    released even when the record cannot be written)."""

    def action(st: DeployState, io: StepIO) -> None:
        record = st.record
        lock_id = st.lock_id or ""
        full = remote.redactor(record.as_dict())
        line = json.dumps(remote.redactor(record.summary()), default=str)
        data = line + "\n" + json.dumps(full, indent=1, default=str) + "\n"
        r = io.run(record_argv(remote, record.id, lock_id), input=data, timeout=120,
                   check=False)
        if lock_id and r.returncode != NOT_OURS:
            st.lock_id = None
        if r.returncode != 0:
            raise ConveyorError(
                f"could not write the deployment record on {remote.host}"
                + (" (the lock was not ours any more)" if r.returncode == NOT_OURS else "")
                + f": {tail(r.stderr + r.stdout)}",
                hint=f"check with `conveyor lock status {remote.name}`")
        io.note(remote.record_file(record.id) + ("; lock released" if lock_id else ""))

    return Step("record", action, describe=[
        host.shown(record_argv(remote, "<deployment id>", "<deployment id>")),
        "stdin: the deployment record (JSON, redacted)"], reads=("lock_id",),
        writes=("lock_id",))


def read_history(remote: Remote, limit: int = 20) -> list[dict[str, Any]]:
    r = remote.transport.run(["tail", "-n", str(limit), remote.history_file], check=False,
                             timeout=60)
    out = []
    for line in r.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_record(remote: Remote, deployment_id: str) -> dict[str, Any]:
    if deployment_id in ("last", "latest"):
        entries = read_history(remote, 1)
        if not entries:
            raise ConveyorError(f"{remote.name} has no deployments recorded yet")
        deployment_id = entries[-1]["id"]
    if not all(c.isalnum() or c in "-_" for c in deployment_id):
        raise ConveyorError(f"not a deployment id: {deployment_id!r}")
    r = remote.transport.run(["cat", remote.record_file(deployment_id)], check=False, timeout=60)
    if r.returncode != 0:
        raise ConveyorError(f"no deployment {deployment_id} on {remote.name}",
                            hint=f"`conveyor history {remote.name}` lists them")
    return json.loads(r.stdout)
