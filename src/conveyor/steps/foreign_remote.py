"""A project's own migration tool on a remote host (dev, prod): its commands run in a
temporary container of the app image on the database's network, with the app's environment
(`Remote.app_env()`: `app.env`, `app.secrets`, the environment's env and secrets, DATABASE_URL)
in an env file (0600, host/with_env_file.sh removes it when the command ends; never in an
argv). Past `migrations.timeout` the container and the env file are removed.

Used by the migrate step (`migrations.command`), prod's plan step (`status_command`,
`sql_command`), status (`status_command`) and rollback's revert step (`revert_command`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from conveyor import host
from conveyor.plan import StepIO
from conveyor.steps import foreign
from conveyor.steps import migrate_engine as engine
from conveyor.targets.remote import Remote, env_file

#: seconds a read-only tool command (status, sql) may run
READ_TIMEOUT = 300.0


def env_stdin(remote: Remote, database_url: str | None = None) -> bytes:
    """The tool container's env file: DATABASE_URL first, then the app's environment.
    `database_url`: another database than the environment's (the rehearsal's scratch copy);
    the tool gets the same settings as on the real one."""
    env = remote.app_env()
    url = env.pop("DATABASE_URL")
    return env_file({"DATABASE_URL": database_url or url, **env},
                    "the migration container's environment").encode()


def tool_argv(remote: Remote, image_ref: str, command: Sequence[str], role: str,
              run_id: str) -> tuple[tuple[str, ...], str, str]:
    """(argv, container name, env file path) of `command` in a temporary container."""
    name = remote.container_name(role, run_id)
    env_path = f"{remote.state_dir}/{role}-{run_id}.env"
    run_argv = engine.user_command_argv(image_ref, command, name=name, network=remote.network,
                                        env_file=env_path,
                                        labels=remote.labels(role,
                                                             **{"conveyor.deployment": run_id}))
    return host.argv("with_env_file", env_path, *run_argv), name, env_path


def run_in_container(remote: Remote, run: foreign.Runner, argv: Sequence[str], *, name: str,
                     env_path: str, timeout: float, log: Any = None) -> foreign.Outcome:
    return foreign.run_tool(run, argv, timeout=timeout, log=log or (lambda line: None),
                            input=env_stdin(remote),
                            cleanup=[foreign.remove_container_argv(name), ("rm", "-f", env_path)])


def backup_hint(remote: Remote, hint: str, backup: dict[str, Any] | None) -> str:
    """The hint of a failed tool command: conveyor cannot revert what the tool did."""
    if not backup:
        return hint
    return (f"{hint}. conveyor cannot revert what the migration tool did: the pre-deploy "
            f"backup {backup.get('file') or backup.get('id')} is the way back "
            f"(`conveyor restore {remote.name} {backup.get('id')}`), or fix forward with a new "
            "migration")


def run_remote(remote: Remote, io: StepIO, argv: Sequence[str], *, name: str, env_path: str,
               hint: str, backup: dict[str, Any] | None, command: Sequence[str] = (),
               what: str = "the migration command") -> None:
    """The migrate step's `migrations.command` (the tool decides what is pending), or the
    revert step's `revert_command`."""
    mcfg = remote.cfg.migrations
    command = command or mcfg.command
    assert io.transport is not None
    out = run_in_container(remote, io.transport.run, argv, name=name, env_path=env_path,
                           timeout=mcfg.timeout, log=io.log)
    if not out.ok:
        raise foreign.failure(what, command, out, where=remote.name,
                              timeout=mcfg.timeout, hint=backup_hint(remote, hint, backup))
    last = [ln for ln in out.lines if ln.strip()]
    io.note(f"ran `{foreign.shown(command)}`"
            + (" (the tool decides what is pending)" if what == "the migration command" else "")
            + (f": {last[-1].strip()}" if last else ""))


def run_read(remote: Remote, image_ref: str, command: Sequence[str], role: str,
             run_id: str | None = None) -> foreign.Outcome:
    """A read-only tool command (status, sql) in a temporary container of `image_ref`."""
    argv, name, env_path = tool_argv(remote, image_ref, command, role,
                                     run_id or secrets.token_hex(4))
    return run_in_container(remote, remote.transport.run, argv, name=name, env_path=env_path,
                            timeout=READ_TIMEOUT)


def tool_status(remote: Remote, image_ref: str) -> dict[str, Any]:
    """`status`'s migrations of a project whose own tool migrates: never conveyor's engine's
    view ("0 applied"); the tool's own status output when `status_command` is set."""
    mcfg = remote.cfg.migrations
    out: dict[str, Any] = {"ok": False, "applied": [], "pending": [], "drift": [],
                           "tool": {"command": foreign.shown(mcfg.command),
                                    "status_command": foreign.shown(mcfg.status_command)
                                    if mcfg.status_command else None}}
    text = foreign.managed_by(mcfg)
    if mcfg.status_command:
        res = run_read(remote, image_ref, mcfg.status_command, "migrate-status")
        out["tool"].update(exit_code=res.returncode, output=res.lines)
        text += "\n" + (res.text if res.ok else
                        str(foreign.failure("the status command", mcfg.status_command, res,
                                            where=remote.name, timeout=READ_TIMEOUT, hint=None)))
    out["error"] = text
    return out
