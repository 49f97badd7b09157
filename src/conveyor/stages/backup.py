"""Database backups of a remote environment, and restoring one.

A backup is `pg_dump --format=custom` run in the environment's database container (a
conveyor-managed PostgreSQL: local socket, so no password anywhere), written on the host under
`environments.<env>.backup.dir` and verified before it counts: the file is not empty and
`pg_restore --list` reads it. Next to each `<app>-<env>-<id>.dump` lies `<...>.json`: who took
it, when, why (which deployment), the image serving then and the migrations applied then.
Retention keeps the newest `backup.keep` of the environment's backups.

Restoring never destroys the live database before the restored copy is complete: the backup is
restored into a new database, the two are swapped by renaming (one transaction), the app is
started again and health-checked, and only then the old database is dropped (a safety backup of
it was taken first). Any failure before that swaps back and restarts the app on the old data.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from conveyor.commands import docker
from conveyor.config import ContainerDatabase
from conveyor.errors import ConfigError, ConveyorError
from conveyor.pipeline import Step, StepContext
from conveyor.records import actor, iso, new_id
from conveyor.stages.remote import SCRIPT_NAMES, Remote, _tail, shown

ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$")


class BackupFailed(ConveyorError):
    exit_code = 13


class RestoreFailed(ConveyorError):
    exit_code = 14


def require_managed_db(remote: Remote, what: str = "backups") -> ContainerDatabase:
    db = remote.env.database
    if not isinstance(db, ContainerDatabase) or remote.db_container is None:
        raise ConfigError(
            f"{what} need a conveyor-managed database (kind = \"container\"); {remote.name}'s "
            "database is reached by URL",
            file=remote.cfg.file, key=f"environments.{remote.name}.database.kind",
            hint="back up a database reached by URL with its provider's tools")
    return db


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


# --------------------------------------------------------------------------- scripts

# Fixed shell text; values are positional arguments. The dump is verified before it replaces
# anything: not empty, and pg_restore reads its table of contents.
BACKUP_SCRIPT = """\
umask 077
d=$1; n=$2; c=$3; u=$4; db=$5; keep=$6; pattern=$7; protect=$8
mkdir -p "$d" || exit 1
f="$d/$n.dump"
if ! docker exec "$c" pg_dump --format=custom --no-password -U "$u" -d "$db" > "$f.partial"
then
  rm -f "$f.partial"; echo "pg_dump failed" >&2; exit 10
fi
size=$(wc -c < "$f.partial")
if [ "$size" -eq 0 ]; then rm -f "$f.partial"; echo "the dump is empty" >&2; exit 11; fi
if ! toc=$(docker exec -i "$c" pg_restore --list < "$f.partial"); then
  rm -f "$f.partial"; echo "pg_restore --list cannot read the dump" >&2; exit 12
fi
objects=$(printf '%s\\n' "$toc" | grep -c '^[0-9]')
cat > "$d/$n.json" && mv "$f.partial" "$f" || exit 1
echo "::backup:: $size $objects"
ls -1 "$d" | grep -E "$pattern" | sort -r | tail -n +$((keep + 1)) | while IFS= read -r old; do
  [ "$old" = "$protect.dump" ] && continue
  rm -f "$d/$old" "$d/${old%.dump}.json" && echo "::removed:: $old"
done
"""

LIST_SCRIPT = """\
d=$1; pattern=$2
[ -d "$d" ] || exit 0
ls -1 "$d" | grep -E "$pattern" | sort | while IFS= read -r f; do
  printf '%s\\t%s\\t' "$f" "$(wc -c < "$d/$f")"
  j="$d/${f%.dump}.json"
  if [ -f "$j" ]; then tr -d '\\n' < "$j"; fi
  echo
done
"""

VERIFY_SCRIPT = """\
f=$1; c=$2
[ -s "$f" ] || { echo "no backup file $f (or it is empty)" >&2; exit 20; }
toc=$(docker exec -i "$c" pg_restore --list < "$f") || exit 21
echo "::backup:: $(wc -c < "$f") $(printf '%s\\n' "$toc" | grep -c '^[0-9]')"
"""

# $1 file, $2 db container, $3 user, $4 the new database, $5 DROP it, $6 CREATE it
RESTORE_SCRIPT = """\
f=$1; c=$2; u=$3; new=$4
docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$5" -c "$6" || exit 21
if ! docker exec -i "$c" pg_restore --exit-on-error --single-transaction --no-password \\
    -U "$u" -d "$new" < "$f"; then
  docker exec "$c" psql -XAtq -U "$u" -d postgres -c "$5" >/dev/null 2>&1
  exit 22
fi
"""

# $1 db container, $2 user, $3 SQL that ends the other sessions, $4 the swap (one transaction);
# a session that is still going away makes the rename fail: a bounded number of retries
SWAP_SCRIPT = """\
c=$1; u=$2
i=0
while :; do
  docker exec "$c" psql -XAtq -U "$u" -d postgres -c "$3" >/dev/null 2>&1
  out=$(docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$4" 2>&1) \\
    && exit 0
  i=$((i + 1))
  if [ "$i" -ge 20 ]; then echo "$out" >&2; exit 23; fi
  sleep 0.25
done
"""

SCRIPT_NAMES.update({
    BACKUP_SCRIPT: "<backup script: docker exec $3 pg_dump --format=custom -U $4 -d $5 > "
    "$1/$2.dump.partial; verify (not empty, pg_restore --list reads it); metadata from stdin "
    "-> $1/$2.json; rename to $1/$2.dump; keep the newest $6 files matching $7 (never $8)>",
    LIST_SCRIPT: "<list script: name, size and metadata of the files in $1 matching $2>",
    VERIFY_SCRIPT: "<verify script: $1 is not empty and pg_restore --list (in $2) reads it>",
    RESTORE_SCRIPT: "<restore script: in $2: psql -d postgres -c $5 -c $6 (a new database "
    "$4), pg_restore --exit-on-error --single-transaction -d $4 < $1 (dropped on failure)>",
    SWAP_SCRIPT: "<swap script: in $1: end other sessions ($3), then $4 in one transaction "
    "(bounded retries)>",
})


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------- backup


@dataclass
class BackupOptions:
    reason: str = "manual"
    deployment: str | None = None
    protect: str | None = None  # a backup id retention must not remove (the one being restored)


def backup_argv(remote: Remote, backup_id: str, protect: str | None = None) -> tuple[str, ...]:
    db = remote.env.database
    assert isinstance(db, ContainerDatabase) and remote.db_container
    protect_name = backup_name(remote, protect) if protect else ""
    return ("sh", "-c", BACKUP_SCRIPT, "conveyor-backup", backup_dir(remote),
            backup_name(remote, backup_id), remote.db_container, db.user, db.name,
            str(remote.env.backup.keep), file_pattern(remote), protect_name)


def applied_versions_from_rows(rows: list[str] | None) -> list[str] | None:
    """Applied versions from the lock step's rows (`diesel_version conveyor_version checksum`)."""
    if rows is None:
        return None
    out = []
    for line in rows:
        parts = line.split()
        if parts and parts[0] != "-":
            out.append(parts[0])
    return sorted(out)


def serving_image(values: dict[str, Any]) -> str | None:
    current = values.get("current") or {}
    labels = (current.get("Config") or {}).get("Labels") or {}
    return labels.get("conveyor.image") or (current.get("Config") or {}).get("Image")


def take_backup(remote: Remote, backup_id: str, opts: BackupOptions,
                values: dict[str, Any] | None = None, log=None) -> dict[str, Any]:
    """Dump, verify, store, apply retention. Returns the backup's metadata (with size)."""
    require_managed_db(remote)
    values = values or {}
    meta = {"id": backup_id, "app": remote.app.name, "env": remote.name,
            "file": backup_path(remote, backup_id), "created_at": iso(time.time()),
            "who": actor(), "reason": opts.reason, "deployment": opts.deployment,
            "image": serving_image(values),
            "migrations": applied_versions_from_rows(values.get("db_applied"))}
    t0 = time.monotonic()
    r = remote.transport.run(backup_argv(remote, backup_id, opts.protect),
                             input=json.dumps(meta) + "\n", check=False, timeout=None)
    if r.returncode != 0:
        raise BackupFailed(
            f"the backup of {remote.name}'s database failed (exit {r.returncode}): "
            f"{_tail(r.stderr + r.stdout)}",
            hint=f"check the database container ({remote.db_container}) and the space in "
            f"{backup_dir(remote)} on {remote.host}")
    size = objects = 0
    removed = []
    for line in r.stdout.splitlines():
        if line.startswith("::backup:: "):
            _, size_s, objects_s = line.split()
            size, objects = int(size_s), int(objects_s)
        elif line.startswith("::removed:: "):
            removed.append(line.split(" ", 1)[1])
    meta.update(size=size, objects=objects, seconds=round(time.monotonic() - t0, 3),
                removed=removed)
    if log is not None:
        log(f"{meta['file']}: {size} bytes, {objects} objects in its table of contents "
            "(pg_restore --list)")
        for name in removed:
            log(f"retention (keep {remote.env.backup.keep}): removed {name}")
    return meta


def backup_step(remote: Remote, backup_id: str, opts: BackupOptions) -> Step:
    def action(ctx: StepContext) -> None:
        meta = take_backup(remote, backup_id, opts, ctx.values, log=ctx.log)
        ctx.values["backup"] = meta
        record = ctx.values.get("record")
        if record is not None and hasattr(record, "details"):
            record.details["backup"] = {k: meta[k] for k in ("id", "file", "size", "objects")}
        ctx.note(f"{meta['file']} ({human_size(meta['size'])}, verified)")

    return Step("backup", action, describe=[
        shown(backup_argv(remote, backup_id, opts.protect)),
        "stdin: the backup's metadata (JSON: who, why, serving image, applied migrations)"])


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- list


def list_argv(remote: Remote) -> tuple[str, ...]:
    return ("sh", "-c", LIST_SCRIPT, "conveyor-backups", backup_dir(remote), file_pattern(remote))


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
                            f"{_tail(r.stderr)}")
    return parse_list(remote, r.stdout)


# --------------------------------------------------------------------------- restore


def verify_argv(remote: Remote, backup_id: str) -> tuple[str, ...]:
    return ("sh", "-c", VERIFY_SCRIPT, "conveyor-verify", backup_path(remote, backup_id),
            remote.db_container or "")


def restore_names(remote: Remote, restore_id: str) -> dict[str, str]:
    db = require_managed_db(remote, "restores")
    base = db.name[:40]
    short = restore_id.rsplit("-", 1)[-1]
    return {"live": db.name, "new": f"{base}_restoring_{short}",
            "old": f"{base}_pre_restore_{short}"}


def restore_argv(remote: Remote, backup_id: str, names: dict[str, str]) -> tuple[str, ...]:
    db = require_managed_db(remote, "restores")
    drop = f"DROP DATABASE IF EXISTS {_ident(names['new'])}"
    create = f"CREATE DATABASE {_ident(names['new'])} OWNER {_ident(db.user)}"
    return ("sh", "-c", RESTORE_SCRIPT, "conveyor-restore", backup_path(remote, backup_id),
            remote.db_container or "", db.user, names["new"], drop, create)


def swap_argv(remote: Remote, first: str, second: str, third: str) -> tuple[str, ...]:
    """Rename `first` -> `third` and `second` -> `first`, in one transaction."""
    db = require_managed_db(remote, "restores")
    terminate = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN "
                 f"({_literal(first)}, {_literal(second)}) AND pid <> pg_backend_pid()")
    swap = (f"BEGIN; ALTER DATABASE {_ident(first)} RENAME TO {_ident(third)}; "
            f"ALTER DATABASE {_ident(second)} RENAME TO {_ident(first)}; COMMIT;")
    return ("sh", "-c", SWAP_SCRIPT, "conveyor-swap", remote.db_container or "", db.user,
            terminate, swap)


def drop_db_argv(remote: Remote, name: str) -> tuple[str, ...]:
    db = require_managed_db(remote, "restores")
    return docker.exec_(remote.db_container or "", [
        "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", "postgres",
        "-c", f"DROP DATABASE IF EXISTS {_ident(name)}"])


def verify_step(remote: Remote, backup_id: str) -> Step:
    argv = verify_argv(remote, backup_id)

    def action(ctx: StepContext) -> None:
        r = remote.transport.run(argv, check=False, timeout=600)
        if r.returncode != 0:
            raise RestoreFailed(
                f"backup {backup_id} of {remote.name} cannot be restored: "
                f"{_tail(r.stderr + r.stdout)}",
                hint=f"`conveyor backups {remote.name}` lists the backups on {remote.host}")
        size, objects = 0, 0
        for line in r.stdout.splitlines():
            if line.startswith("::backup:: "):
                _, s, o = line.split()
                size, objects = int(s), int(o)
        ctx.values["restore_source"] = {"id": backup_id, "file": backup_path(remote, backup_id),
                                        "size": size, "objects": objects}
        ctx.note(f"{backup_path(remote, backup_id)}: {human_size(size)}, {objects} objects")

    return Step("verify", action, describe=[shown(argv)])


def restore_steps(remote: Remote, backup_id: str, restore_id: str) -> list[Step]:
    """restore (into a new database) -> swap -> [the app is started and checked by the caller's
    steps] ; `cleanup` (drop the old database) is returned separately: it runs last."""
    names = restore_names(remote, restore_id)
    argv = restore_argv(remote, backup_id, names)
    swap = swap_argv(remote, names["live"], names["new"], names["old"])
    swap_back = swap_argv(remote, names["live"], names["old"], names["new"])
    drop_new = drop_db_argv(remote, names["new"])

    def restore(ctx: StepContext) -> None:
        r = remote.transport.run(argv, check=False, timeout=None, stream=ctx.log)
        if r.returncode != 0:
            raise RestoreFailed(
                f"restoring backup {backup_id} into a new database {names['new']} failed "
                f"(exit {r.returncode}): {_tail(r.stderr + r.stdout)}",
                hint="the live database was not touched")
        ctx.note(f"restored into {names['new']}")

    def restore_undo(ctx: StepContext) -> None:
        remote.transport.run(drop_new, timeout=300)
        ctx.log(f"dropped {names['new']}")

    def do_swap(ctx: StepContext) -> None:
        r = remote.transport.run(swap, check=False, timeout=300)
        if r.returncode != 0:
            raise RestoreFailed(f"swapping the restored database in failed: {_tail(r.stderr)}",
                                hint="the live database was not touched")
        ctx.values["restore_swapped"] = True
        ctx.note(f"{names['live']} is the restored copy; the previous one is "
                 f"{names['old']} until the app is healthy")

    def swap_undo(ctx: StepContext) -> None:
        r = remote.transport.run(swap_back, check=False, timeout=300)
        if r.returncode != 0:
            raise RestoreFailed(f"could not swap the previous database back: {_tail(r.stderr)}",
                                hint=f"by hand: rename {names['old']} to {names['live']}")
        ctx.values["restore_swapped"] = False
        ctx.log(f"swapped back: {names['live']} is the previous database again")

    return [
        Step("restore", restore, describe=[shown(argv)], undo=restore_undo,
             undo_describe=[drop_new]),
        Step("swap", do_swap, describe=[shown(swap)], undo=swap_undo,
             undo_describe=[shown(swap_back)]),
    ]


def cleanup_step(remote: Remote, restore_id: str) -> Step:
    names = restore_names(remote, restore_id)
    argv = drop_db_argv(remote, names["old"])

    def action(ctx: StepContext) -> None:
        r = remote.transport.run(argv, check=False, timeout=600)
        if r.returncode != 0:
            ctx.log(f"could not drop {names['old']}: {_tail(r.stderr)}")
            ctx.note(f"kept {names['old']} (drop it by hand once you are sure)")
            return
        safety = (ctx.values.get("backup") or {}).get("id")
        ctx.note(f"dropped the previous database {names['old']}"
                 + (f" (its backup: {safety})" if safety else ""))

    return Step("cleanup", action, describe=[argv])


def new_backup_id() -> str:
    return new_id()
