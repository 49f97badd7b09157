"""Restoring a backup of a remote environment's database.

Restoring never destroys the live database before the restored copy is complete: the backup is
restored into a new database, the two are swapped by renaming (one transaction), the app is
started again and health-checked, and only then the old database is dropped (a safety backup of
it was taken first). Any failure before that swaps back and restarts the app on the old data.
"""

from __future__ import annotations

from conveyor import host
from conveyor.commands import docker
from conveyor.errors import RestoreFailed
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.steps.backup import backup_path, human_size, require_managed_db
from conveyor.targets.remote import Remote, tail


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"



def verify_argv(remote: Remote, backup_id: str) -> tuple[str, ...]:
    return host.argv("verify_backup", backup_path(remote, backup_id), remote.db_container or "")


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
    return host.argv("restore", backup_path(remote, backup_id), remote.db_container or "",
                     db.user, names["new"], drop, create)


def swap_argv(remote: Remote, first: str, second: str, third: str) -> tuple[str, ...]:
    """Rename `first` -> `third` and `second` -> `first`, in one transaction."""
    db = require_managed_db(remote, "restores")
    terminate = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN "
                 f"({_literal(first)}, {_literal(second)}) AND pid <> pg_backend_pid()")
    swap = (f"BEGIN; ALTER DATABASE {_ident(first)} RENAME TO {_ident(third)}; "
            f"ALTER DATABASE {_ident(second)} RENAME TO {_ident(first)}; COMMIT;")
    return host.argv("swap", remote.db_container or "", db.user, terminate, swap)


def drop_db_argv(remote: Remote, name: str) -> tuple[str, ...]:
    db = require_managed_db(remote, "restores")
    return docker.exec_(remote.db_container or "", [
        "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", "postgres",
        "-c", f"DROP DATABASE IF EXISTS {_ident(name)}"])


def verify_step(remote: Remote, backup_id: str) -> Step[DeployState]:
    argv = verify_argv(remote, backup_id)

    def action(st: DeployState, io: StepIO) -> None:
        r = io.run(argv, check=False, timeout=600)
        if r.returncode != 0:
            raise RestoreFailed(
                f"backup {backup_id} of {remote.name} cannot be restored: "
                f"{tail(r.stderr + r.stdout)}",
                hint=f"`conveyor backups {remote.name}` lists the backups on {remote.host}")
        size, objects = 0, 0
        for line in r.stdout.splitlines():
            if line.startswith("::backup:: "):
                _, s, o = line.split()
                size, objects = int(s), int(o)
        st.restore_source = {"id": backup_id, "file": backup_path(remote, backup_id),
                                        "size": size, "objects": objects}
        io.note(f"{backup_path(remote, backup_id)}: {human_size(size)}, {objects} objects")

    return Step("verify", action, describe=[host.shown(argv)])


def restore_steps(remote: Remote, backup_id: str, restore_id: str) -> list[Step[DeployState]]:
    """restore (into a new database) -> swap -> [the app is started and checked by the caller's
    steps] ; `cleanup` (drop the old database) is returned separately: it runs last."""
    names = restore_names(remote, restore_id)
    argv = restore_argv(remote, backup_id, names)
    swap = swap_argv(remote, names["live"], names["new"], names["old"])
    swap_back = swap_argv(remote, names["live"], names["old"], names["new"])
    drop_new = drop_db_argv(remote, names["new"])

    def restore(st: DeployState, io: StepIO) -> None:
        r = io.run(argv, check=False, timeout=None, stream=True)
        if r.returncode != 0:
            raise RestoreFailed(
                f"restoring backup {backup_id} into a new database {names['new']} failed "
                f"(exit {r.returncode}): {tail(r.stderr + r.stdout)}",
                hint="the live database was not touched")
        io.note(f"restored into {names['new']}")

    def restore_undo(st: DeployState, io: StepIO) -> None:
        io.run(drop_new, timeout=300)
        io.log(f"dropped {names['new']}")

    def do_swap(st: DeployState, io: StepIO) -> None:
        r = io.run(swap, check=False, timeout=300)
        if r.returncode != 0:
            raise RestoreFailed(f"swapping the restored database in failed: {tail(r.stderr)}",
                                hint="the live database was not touched")
        st.restore_swapped = True
        io.note(f"{names['live']} is the restored copy; the previous one is "
                 f"{names['old']} until the app is healthy")

    def swap_undo(st: DeployState, io: StepIO) -> None:
        r = io.run(swap_back, check=False, timeout=300)
        if r.returncode != 0:
            raise RestoreFailed(f"could not swap the previous database back: {tail(r.stderr)}",
                                hint=f"by hand: rename {names['old']} to {names['live']}")
        st.restore_swapped = False
        io.log(f"swapped back: {names['live']} is the previous database again")

    return [
        Step("restore", restore, describe=[host.shown(argv)], undo=restore_undo,
             undo_describe=[drop_new]),
        Step("swap", do_swap, describe=[host.shown(swap)], undo=swap_undo,
             undo_describe=[host.shown(swap_back)]),
    ]


def cleanup_step(remote: Remote, restore_id: str) -> Step[DeployState]:
    names = restore_names(remote, restore_id)
    argv = drop_db_argv(remote, names["old"])

    def action(st: DeployState, io: StepIO) -> None:
        r = io.run(argv, check=False, timeout=600)
        if r.returncode != 0:
            io.log(f"could not drop {names['old']}: {tail(r.stderr)}")
            io.note(f"kept {names['old']} (drop it by hand once you are sure)")
            return
        safety = (st.backup or {}).get("id")
        io.note(f"dropped the previous database {names['old']}"
                 + (f" (its backup: {safety})" if safety else ""))

    return Step("cleanup", action, describe=[argv])



