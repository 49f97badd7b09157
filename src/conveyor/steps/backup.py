"""Database backups of a remote environment.

A backup is `pg_dump --format=custom` run in the environment's database container (a
conveyor-managed PostgreSQL: local socket, so no password anywhere), written on the host under
`environments.<env>.backup.dir` and verified before it counts: the file is not empty and
`pg_restore --list` reads it (host/backup.sh). Next to each `<app>-<env>-<id>.dump` lies
`<...>.json`: who took it, when, why (which deployment), the image serving then and the
migrations applied then. Retention keeps the newest `backup.keep` of the environment's backups.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor import host
from conveyor.errors import BackupFailed, ConveyorError
from conveyor.migrations import queries
from conveyor.plan import Step, StepIO
from conveyor.records import actor, iso, new_id
from conveyor.state.deploy import DeployState
from conveyor.targets.remote import Remote, tail

ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$")


def require_managed_db(remote: Remote, what: str = "backups") -> Any:
    return remote.managed_database(what)


# --------------------------------------------------------------------------- names


def backup_prefix(remote: Remote) -> str:
    return f"{remote.app.name}-{remote.name}-"


def backup_name(remote: Remote, backup_id: str) -> str:
    return f"{backup_prefix(remote)}{backup_id}"


def backup_dir(remote: Remote) -> str:
    return remote.env.backup.dir.rstrip("/") or "/"


def backup_path(remote: Remote, backup_id: str) -> str:
    return f"{backup_dir(remote)}/{backup_name(remote, backup_id)}.dump"


def file_pattern(remote: Remote) -> str:
    """An ERE matching exactly this environment's backup files (not `prod-eu`'s for `prod`)."""
    prefix = backup_prefix(remote).replace(".", "[.]")
    return f"^{prefix}[0-9]{{8}}T[0-9]{{6}}Z-[0-9a-f]{{4}}[.]dump$"


def parse_backup_ref(remote: Remote, ref: str) -> str:
    """A backup's id from what a user types: the id, the file name, or its path."""
    name = ref.rsplit("/", 1)[-1]
    name = name.removesuffix(".dump").removesuffix(".json")
    name = name.removeprefix(backup_prefix(remote))
    if not ID_RE.match(name):
        raise ConveyorError(f"not a backup of {remote.app.name} {remote.name}: {ref!r}",
                            hint=f"`conveyor backups {remote.name}` lists them (the id looks "
                            "like 20260101T120000Z-ab12)")
    return name


# --------------------------------------------------------------------------- backup


@dataclass
class BackupOptions:
    reason: str = "manual"
    deployment: str | None = None
    protect: str | None = None  # a backup id retention must not remove (the one being restored)
    rows: bool = False  # also count each table's rows in the dump (the rehearsal checks them)


def backup_argv(remote: Remote, backup_id: str, protect: str | None = None, *,
                rows: bool = False) -> tuple[str, ...]:
    db = remote.managed_database()
    protect_name = backup_name(remote, protect) if protect else ""
    return host.argv("backup", backup_dir(remote), backup_name(remote, backup_id),
                     remote.db_container or "", db.user, db.name, str(remote.env.backup.keep),
                     file_pattern(remote), protect_name, *(("rows",) if rows else ()))


def applied_versions_from_rows(rows: list[str] | None) -> list[str] | None:
    """Applied versions from the lock step's rows of the applied-migrations query."""
    return None if rows is None else queries.applied_versions(rows)


def take_backup(remote: Remote, backup_id: str, opts: BackupOptions,
                st: DeployState | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Dump, verify, store, apply retention. Returns the backup's metadata (with size)."""
    require_managed_db(remote)
    meta: dict[str, Any] = {
        "id": backup_id, "app": remote.app.name, "env": remote.name,
        "file": backup_path(remote, backup_id), "created_at": iso(time.time()),
        "who": actor(), "reason": opts.reason, "deployment": opts.deployment,
        "image": st.serving_image if st else None,
        "migrations": applied_versions_from_rows(st.db_applied if st else None)}
    t0 = time.monotonic()
    r = remote.transport.run(backup_argv(remote, backup_id, opts.protect, rows=opts.rows),
                             input=json.dumps(meta) + "\n", check=False, timeout=None)
    if r.returncode != 0:
        raise BackupFailed(
            f"the backup of {remote.name}'s database failed (exit {r.returncode}): "
            f"{tail(r.stderr + r.stdout)}",
            hint=f"check the database container ({remote.db_container}) and the space in "
            f"{backup_dir(remote)} on {remote.host}")
    size = objects = 0
    removed = []
    rows: dict[str, int] = {}
    for line in r.stdout.splitlines():
        if line.startswith("::backup:: "):
            _, size_s, objects_s = line.split()
            size, objects = int(size_s), int(objects_s)
        elif line.startswith("::rows:: "):
            _, count, table = line.split(" ", 2)
            rows[table] = int(count)
        elif line.startswith("::removed:: "):
            removed.append(line.split(" ", 1)[1])
    meta.update(size=size, objects=objects, seconds=round(time.monotonic() - t0, 3),
                removed=removed)
    if opts.rows:
        meta["rows"] = rows
    if log is not None:
        log(f"{meta['file']}: {size} bytes, {objects} objects in its table of contents "
            "(pg_restore --list)")
        for name in removed:
            log(f"retention (keep {remote.env.backup.keep}): removed {name}")
    return meta


def backup_step(remote: Remote, backup_id: str, opts: BackupOptions) -> Step[DeployState]:
    def action(st: DeployState, io: StepIO) -> None:
        meta = take_backup(remote, backup_id, opts, st, log=io.log)
        st.backup = meta
        details = getattr(st.record, "details", None)
        if details is not None:
            details["backup"] = {k: meta[k] for k in ("id", "file", "size", "objects")}
        io.note(f"{meta['file']} ({human_size(meta['size'])}, verified)")

    return Step("backup", action, describe=[
        host.shown(backup_argv(remote, backup_id, opts.protect, rows=opts.rows)),
        "stdin: the backup's metadata (JSON: who, why, serving image, applied migrations)"],
        reads=("current", "db_applied"), writes=("backup",))


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- list


def list_argv(remote: Remote) -> tuple[str, ...]:
    return host.argv("list_backups", backup_dir(remote), file_pattern(remote))


def parse_list(remote: Remote, text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        parts = line.split("\t", 2)
        if len(parts) < 2:
            continue
        name, size = parts[0], parts[1]
        try:
            meta = json.loads(parts[2]) if len(parts) > 2 and parts[2].strip() else {}
        except ValueError:
            meta = {}
        bid = name.removesuffix(".dump").removeprefix(backup_prefix(remote))
        out.append({**meta, "id": bid, "file": f"{backup_dir(remote)}/{name}",
                    "size": int(size) if size.strip().isdigit() else None})
    return out


def list_backups(remote: Remote) -> list[dict[str, Any]]:
    """The environment's backups, oldest first."""
    r = remote.transport.run(list_argv(remote), check=False, timeout=60)
    if r.returncode != 0:
        raise ConveyorError(f"cannot list the backups in {backup_dir(remote)} on {remote.host}: "
                            f"{tail(r.stderr)}")
    return parse_list(remote, r.stdout)



def new_backup_id() -> str:
    return new_id()
