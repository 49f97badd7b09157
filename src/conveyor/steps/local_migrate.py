"""The local migrate step: apply the pending migrations to the local database.

With the built-in engine (`conveyor.migrations.Migrator`) by default. With `migrations.command`
set, that command runs at every `conveyor up` in a temporary container of the app image on the
database's network, with the app's configured environment (`app.env`, `app.secrets`, the
environment's `env` and `secrets`) plus DATABASE_URL, all passed by name (values never in an
argv): the tool decides what is pending, conveyor's engine is not asked.
"""

from __future__ import annotations

import functools
from typing import Any

from conveyor.commands import docker as dockercmd
from conveyor.errors import MigrationStepFailed
from conveyor.masking import mask_secrets
from conveyor.migrations import MigrationError, Migrator
from conveyor.migrations.errors import DriftError
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps import foreign
from conveyor.targets.local import LocalStack

READS = ("app_image", "containers")
WRITES = ("migrations_applied", "migrations_total")
DB_NETWORKS = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}"
APP_IMAGE_PLACEHOLDER = "<image of the compose service {service}>"


def describe(state: LocalState) -> list[tuple[str, ...] | str]:
    """What the step runs, for --dry-run."""
    stack, cfg = state.target, state.target.cfg
    if cfg.migrations.command:
        image = state.app_image or APP_IMAGE_PLACEHOLDER.format(service=stack.app_service)
        return [command_argv(state, image, network="<network of the db service>"),
                ("at every `up` (the tool decides what is pending); the app's environment "
                 "and DATABASE_URL by name; stopped and removed after "
                 f"{cfg.migrations.timeout:g} s")]
    return [(f"built-in engine: apply pending migrations of {cfg.migrations_dir} "
             f"to {mask_secrets(stack.database_url())}")]


def container_name(stack: LocalStack, role: str = "migrate") -> str:
    return f"{stack.project}-{role}"


def tool_env(stack: LocalStack) -> dict[str, str]:
    """The migration container's environment: the app's settings and DATABASE_URL."""
    cfg = stack.cfg
    env: dict[str, str] = {**cfg.app.env, **stack.env.env}
    for k, ref in cfg.app.secrets.items():
        env[k] = cfg.secret(ref, f"app.secrets.{k}")
    for k, ref in stack.env.secrets.items():
        env[k] = cfg.secret(ref, f"{stack.key}.secrets.{k}")
    env.setdefault("DATABASE_URL", cfg.database_url(stack.env_name, from_host=False))
    return env


def tool_env_names(stack: LocalStack) -> list[str]:
    cfg = stack.cfg
    names = [*cfg.app.env, *stack.env.env, *cfg.app.secrets, *stack.env.secrets, "DATABASE_URL"]
    return list(dict.fromkeys(names))


def command_argv(state: LocalState, image: str, network: str | None) -> tuple[str, ...]:
    """`migrations.command` in a temporary container of the app image (the environment by
    name: the values come from the docker client's environment)."""
    return tool_argv(state.target, image, network, state.target.cfg.migrations.command,
                     container_name(state.target))


def tool_argv(stack: LocalStack, image: str, network: str | None, command: list[str],
              name: str) -> tuple[str, ...]:
    return foreign.tool_argv(image, command, name=name, network=network,
                             env_names=tool_env_names(stack),
                             labels={dockercmd.LABEL: stack.cfg.app.name})


#: drift at `conveyor up` (the engine's own hint names `conveyor migrate run`'s --allow-drift)
DRIFT_HINT = ("restore the original migration files (e.g. from git), or put the change in a new "
              "migration; to apply the pending ones anyway after a review, run `conveyor migrate "
              "run --allow-drift`, then `conveyor up`")


def migration_error(exc: Exception) -> MigrationStepFailed:
    if isinstance(exc, DriftError):
        return MigrationStepFailed(mask_secrets(exc.message), cause=exc, hint=DRIFT_HINT)
    return MigrationStepFailed(str(exc), cause=exc,
                               hint="fix the migration, then run `conveyor up` (or "
                               "`conveyor migrate run`) again")


def migrations(state: LocalState, io: StepIO) -> None:
    stack, cfg = state.target, state.target.cfg
    if cfg.migrations.command:
        run_migration_command(state, io)
        return
    migrator = Migrator(stack.database_url(), cfg.migrations_dir,
                        lock_timeout=cfg.migrations.lock_timeout,
                        on_event=lambda event, **data: io.log(f"migrations: {event}"))
    try:
        before = migrator.status()
        for p in before.problems:
            io.note(f"warning: {p}")
        if not before.pending:
            state.migrations_applied = []
            state.migrations_total = len(before.applied)
            io.note(f"no pending migrations ({len(before.applied)} applied)")
            return
        result = migrator.run()
        applied = [(s.version, s.name) for s in result.applied]
    except MigrationError as exc:
        raise migration_error(exc) from None
    state.migrations_applied = [n for _, n in applied]
    state.migrations_total = len(before.applied) + len(applied)
    io.note(f"applied {len(applied)}: " + ", ".join(state.migrations_applied))


def db_network(state: LocalState, io: StepIO) -> str | None:
    assert io.transport is not None
    return network_of(io.transport.run, state.containers.get(state.target.db_service))


def network_of(run: foreign.Runner, db_id: str | None) -> str | None:
    """The first network of the database container (the tool's container joins it)."""
    if not db_id:
        return None
    r = run(dockercmd.inspect(db_id, DB_NETWORKS), check=False, timeout=30)
    words = r.stdout.split() if r.ok else []
    return words[0] if words else None


def run_migration_command(state: LocalState, io: StepIO) -> None:
    """`migrations.command` in a temporary container of the app image, on the db's network,
    at every `up`: the tool decides what is pending. Past `migrations.timeout` the container
    is removed."""
    cfg = state.target.cfg
    mcfg = cfg.migrations
    argv = command_argv(state, state.need_app_image(), db_network(state, io))
    env = tool_env(state.target)
    state.target.redactor.add(env["DATABASE_URL"])
    assert io.transport is not None
    run = functools.partial(io.transport.run, env=env)
    out = foreign.run_tool(run, argv, timeout=mcfg.timeout, log=io.log,
                           cleanup=[foreign.remove_container_argv(container_name(state.target))])
    state.migrations_applied = []
    state.migrations_total = None
    if not out.ok:
        raise foreign.failure("the migration command", mcfg.command, out, where="local",
                              timeout=mcfg.timeout,
                              hint="fix the migration (or `migrations.command`), then run "
                              "`conveyor up` again")
    last = [ln for ln in out.lines if ln.strip()]
    io.note(f"ran `{foreign.shown(mcfg.command)}` (the tool decides what is pending)"
            + (f": {last[-1].strip()}" if last else ""))


def tool_status(stack: LocalStack, run: foreign.Runner, image: str | None,
                db_id: str | None) -> dict[str, Any]:
    """`conveyor status`'s migrations when the project's own tool migrates: its
    `status_command`'s output in a temporary container of the app image, never the engine's
    view ("0 applied") of a database it did not migrate."""
    mcfg = stack.cfg.migrations
    out: dict[str, Any] = {"ok": False, "applied": [], "pending": [], "drift": [],
                           "tool": {"command": foreign.shown(mcfg.command),
                                    "status_command": foreign.shown(mcfg.status_command)
                                    if mcfg.status_command else None}}
    text = foreign.managed_by(mcfg)
    if mcfg.status_command and image:
        name = container_name(stack, "migrate-status")
        argv = tool_argv(stack, image, network_of(run, db_id), mcfg.status_command, name)
        res = foreign.run_tool(functools.partial(run, env=tool_env(stack)), argv,
                               timeout=120, log=lambda line: None,
                               cleanup=[foreign.remove_container_argv(name)])
        out["tool"].update(exit_code=res.returncode, output=res.lines)
        text += "\n" + (res.text if res.ok else str(foreign.failure(
            "the status command", mcfg.status_command, res, where="local", timeout=120,
            hint=None)))
    out["error"] = text
    return out
