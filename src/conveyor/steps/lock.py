"""The environment's deploy lock on its host, and the host's state read in the same round trip.

The lock is a directory made atomically (`mkdir`) under the environment's state dir, holding
`holder.json` (who, when, what). Taking it also inspects the app and database containers, reads
the applied migrations and whether the image is on the host already (host/lock.sh), so that the
next steps need no extra round trip.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from conveyor import host
from conveyor.config import ContainerDatabase
from conveyor.errors import CommandFailed, ConveyorError, LockHeld, NotSetUp
from conveyor.imageref import ImageRef
from conveyor.plan import Step, StepIO
from conveyor.records import actor
from conveyor.state.deploy import DeployState
from conveyor.steps.migrate_engine import APPLIED_SQL
from conveyor.targets.remote import Remote

LOCK_HELD = 75  # lock.sh's exit code when someone else holds the lock


def lock_info(deployment_id: str, image: ImageRef | None, what: str) -> dict[str, Any]:
    return {"id": deployment_id, "who": actor(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ",
            time.gmtime()), "what": what, "image": image.ref if image else None,
            "pid": os.getpid()}


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unknown holder (the lock is being taken, or its holder file is missing)"
    parts = [str(holder.get("who") or "someone")]
    if holder.get("what"):
        parts.append(f"for `{holder['what']}`")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    if holder.get("id"):
        parts.append(f"(deployment {holder['id']})")
    return " ".join(parts)


def lock_args(remote: Remote, image: ImageRef | None = None) -> tuple[str, ...]:
    """lock.sh's arguments $1 to $7: the state directory, then what it reads."""
    db = remote.env.database
    query = isinstance(db, ContainerDatabase) and not remote.cfg.migrations.command
    user, name = (db.user, db.name) if isinstance(db, ContainerDatabase) and query else ("", "")
    return (remote.state_dir, remote.app_container, remote.db_container or "", user, name,
            APPLIED_SQL if query else "", image.ref if image else "")


def lock_argv(remote: Remote, image: ImageRef | None = None,
              reads: str = "") -> tuple[str, ...]:
    """lock.sh; `reads`: the directory of the same reads started before (the runner's)."""
    return host.argv("lock", *lock_args(remote, image), *((reads,) if reads else ()))


def unlock_argv(remote: Remote, lock_id: str) -> tuple[str, ...]:
    return host.argv("unlock", remote.state_dir, lock_id)


def parse_lock_output(remote: Remote, text: str) -> dict[str, Any]:
    """The sections lock.sh prints after taking the lock: containers, applied rows, image."""
    sections: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line in ("::containers::", "::applied::", "::image::"):
            key = line.strip(":")
            sections[key] = []
        elif key is not None and line.strip():
            sections[key].append(line)
    out: dict[str, Any] = {"app": None, "db": None, "applied": None, "image_labels": None}
    for line in sections.get("containers", []):
        try:
            c = json.loads(line)
        except ValueError:
            continue
        name = (c.get("Name") or "").lstrip("/")
        (c.get("Config") or {}).pop("Env", None)  # the app's secrets: never kept or journaled
        if name == remote.app_container:
            out["app"] = c
        elif name == remote.db_container:
            out["db"] = c.get("State")
    applied = sections.get("applied")
    if applied is not None and "::unknown::" not in applied:
        out["applied"] = applied
    image = sections.get("image")
    if image and "::missing::" not in image:
        try:
            out["image_labels"] = json.loads(image[0]) or {}
        except ValueError:
            pass
    return out


def try_lock(remote: Remote, info: dict[str, Any], image: ImageRef | None = None,
             reads: str = "") -> tuple[bool, dict[str, Any]]:
    """(acquired, holder-or-state): on success, what `parse_lock_output` read (from `reads`,
    the same reads started before, when they are done)."""
    r = remote.transport.run(lock_argv(remote, image, reads), input=json.dumps(info) + "\n",
                             check=False, timeout=60)
    if r.returncode == LOCK_HELD:
        try:
            holder = json.loads(r.stdout.strip() or "{}")
        except ValueError:
            holder = {"raw": r.stdout.strip()[:200]}
        return False, holder
    if r.returncode != 0:
        raise CommandFailed(r.argv, r.returncode, r.stderr or r.stdout, host=remote.host)
    return True, parse_lock_output(remote, r.stdout)


def set_up_host(remote: Remote, st: DeployState, io: StepIO) -> None:
    """The first deploy to a host not set up yet: what `conveyor setup` does (network, volume,
    the database container with a generated password unless the config names one, ready)."""
    from conveyor.steps.setup import database_step, network_step, ready_step, volume_step

    io.log(f"{remote.name} is not set up on {remote.host} yet: setting it up")
    for step in (network_step(remote), volume_step(remote), database_step(remote),
                 ready_step(remote)):
        step.action(st, io)
    st.db_state = {"Running": True, "Status": "running"}


def lock_step(remote: Remote, info: dict[str, Any], *, wait: bool = False,
              wait_timeout: float = 900.0, require_db: bool = True, set_up: bool = False,
              image: ImageRef | None = None) -> Step[DeployState]:
    """Take the environment's lock and, in the same round trip, read the host's state. With
    `set_up`, a host whose database container is missing or stopped is set up first."""

    def action(st: DeployState, io: StepIO) -> None:
        deadline = time.monotonic() + wait_timeout
        delay = 0.5
        announced = False
        # the reads the runner started as it started (under its own lock), used once
        reads = host.take_reads("lock", lock_args(remote, image)[1:])
        while True:
            acquired, data = try_lock(remote, info, image, reads)
            reads = ""
            if acquired:
                break
            holder = describe_holder(data)
            if not wait or time.monotonic() >= deadline:
                raise LockHeld(
                    f"{remote.name} is locked by {holder}"
                    + (f"; waited {wait_timeout:g} s" if wait else ""),
                    holder=data,
                    hint=("wait for it with --wait, or if that deployment is dead: "
                          f"`conveyor lock release {remote.name}`"))
            if not announced:
                io.log(f"waiting for the lock held by {holder}")
                announced = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 5.0)
        st.lock_id = info["id"]
        st.current = data.get("app")
        st.db_state = data.get("db")
        st.db_applied = data.get("applied")
        if data.get("image_labels") is not None:
            st.image_present_labels = data["image_labels"]
        io.note(f"locked by {info['who']}")
        if remote.managed_db and require_db:
            state = st.db_state
            if (not state or not state.get("Running")) and set_up:
                set_up_host(remote, st, io)
                io.note(f"set up {remote.name}: network, volume, database")
            else:
                require_database(remote, st)

    describe: list[Any] = [host.shown(lock_argv(remote, image))]
    if set_up and remote.managed_db:
        describe.append("(a host not set up yet is set up first, as `conveyor setup` does)")
    return Step("lock", action, describe=describe,
                writes=("lock_id", "current", "db_state", "db_applied", "image_present_labels"))


def require_database(remote: Remote, st: DeployState) -> None:
    """NotSetUp unless the database container the lock step saw is running."""
    state = st.db_state
    if not state or not state.get("Running"):
        raise NotSetUp(
            f"the database container {remote.db_container} on {remote.host} is "
            + ("not running" if state else "missing"),
            hint=f"run `conveyor setup {remote.name}` (creates the network, volume and "
            "database container once; deploys never recreate them)")


def database_running_step(remote: Remote) -> Step[DeployState]:
    """After a `lock_step(require_db=False)` (backup, restore: they set nothing up): the database
    container the lock step saw must run. A failure here is filed under "database", not under
    the lock. No round trip: the lock step read the container's state."""

    def action(st: DeployState, io: StepIO) -> None:
        require_database(remote, st)
        io.note(f"{remote.db_container} running")

    return Step("database", action, describe=[f"({remote.db_container} runs: the lock step read it)"],
                reads=("db_state",))


def release(remote: Remote, st: DeployState) -> str:
    """Release the lock this plan holds; a note for the step."""
    if not st.lock_id:
        return "not held"
    r = remote.transport.run(unlock_argv(remote, st.lock_id), check=False, timeout=60)
    if r.returncode != 0:
        raise ConveyorError(f"could not release the lock of {remote.name}: "
                            f"{(r.stdout + r.stderr).strip()}",
                            hint=f"check with `conveyor lock status {remote.name}`")
    st.lock_id = None
    return "released"


def unlock_step(remote: Remote) -> Step[DeployState]:
    def action(st: DeployState, io: StepIO) -> None:
        io.note(release(remote, st))

    return Step("unlock", action, describe=[host.shown(unlock_argv(remote, "<deployment id>"))],
                reads=("lock_id",), writes=("lock_id",))


def lock_status(remote: Remote) -> dict[str, Any] | None:
    r = remote.transport.run(["cat", f"{remote.lock_dir}/holder.json"], check=False, timeout=60)
    if r.returncode != 0:
        probe = remote.transport.run(["test", "-d", remote.lock_dir], check=False, timeout=60)
        return {} if probe.returncode == 0 else None
    try:
        return json.loads(r.stdout or "{}")
    except ValueError:
        return {"raw": r.stdout[:200]}


def force_unlock(remote: Remote) -> None:
    remote.transport.run(["rm", "-rf", remote.lock_dir], timeout=60)
