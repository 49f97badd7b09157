"""The local migrate step: apply the pending migrations to the local database.

With the built-in engine (`conveyor.migrations.Migrator`) by default; with `migrations.command`
set, that command runs in a temporary container of the app image on the database's network,
and the engine's status before and after tells what it applied.
"""

from __future__ import annotations

from conveyor.commands import docker as dockercmd
from conveyor.errors import MigrationStepFailed
from conveyor.masking import mask_secrets
from conveyor.migrations import MigrationError, Migrator
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps.local_common import tail

READS = ("app_image", "containers")
WRITES = ("migrations_applied", "migrations_total")
DB_NETWORKS = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}"
APP_IMAGE_PLACEHOLDER = "<image of the compose service {service}>"


def describe(state: LocalState) -> list[tuple[str, ...] | str]:
    """What the step runs, for --dry-run."""
    stack, cfg = state.target, state.target.cfg
    if cfg.migrations.command:
        image = state.app_image or APP_IMAGE_PLACEHOLDER.format(service=stack.app_service)
        return [command_argv(state, image, network="<network of the db service>")]
    return [(f"built-in engine: apply pending migrations of {cfg.migrations_dir} "
             f"to {mask_secrets(stack.database_url())}")]


def command_argv(state: LocalState, image: str, network: str | None) -> tuple[str, ...]:
    """`migrations.command` in a temporary container of the app image (DATABASE_URL by name)."""
    cfg = state.target.cfg
    return dockercmd.run(image, rm=True, network=network, env_names=["DATABASE_URL"],
                         labels={dockercmd.LABEL: cfg.app.name}, command=cfg.migrations.command)


def migration_error(exc: Exception) -> MigrationStepFailed:
    return MigrationStepFailed(str(exc), cause=exc,
                               hint="fix the migration, then run `conveyor up` (or "
                               "`conveyor migrate run`) again")


def migrations(state: LocalState, io: StepIO) -> None:
    stack, cfg = state.target, state.target.cfg
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
        if cfg.migrations.command:
            run_migration_command(state, io)
            after = migrator.status()
            done = {a.version for a in before.applied}
            applied = [(a.version, a.migration.name if a.migration else a.name or "")
                       for a in after.applied if a.version not in done]
            if after.pending and {m.version for m in after.pending} & \
                    {m.version for m in before.pending}:
                still = ", ".join(m.name for m in after.pending)
                raise MigrationStepFailed(
                    f"the migration command {' '.join(cfg.migrations.command)} succeeded but "
                    f"left migrations pending: {still}", hint="check `migrations.command`")
        else:
            result = migrator.run()
            applied = [(s.version, s.name) for s in result.applied]
    except MigrationError as exc:
        raise migration_error(exc) from None
    state.migrations_applied = [n for _, n in applied]
    state.migrations_total = len(before.applied) + len(applied)
    io.note(f"applied {len(applied)}: " + ", ".join(state.migrations_applied))


def run_migration_command(state: LocalState, io: StepIO) -> None:
    """`migrations.command` in a temporary container of the app image, on the db's network."""
    stack, cfg = state.target, state.target.cfg
    db_id = state.containers.get(stack.db_service)
    network = None
    if db_id:
        r = io.run(dockercmd.inspect(db_id, DB_NETWORKS), check=False, timeout=30)
        words = r.stdout.split() if r.ok else []
        network = words[0] if words else None
    url = cfg.database_url(stack.env_name, from_host=False)
    r = io.run(command_argv(state, state.need_app_image(), network), check=False, stream=True,
               env={"DATABASE_URL": url}, timeout=3600)
    if not r.ok:
        raise MigrationStepFailed(
            f"the migration command failed (exit {r.returncode}):\n"
            f"{tail(r.stdout + r.stderr, 20, indent='  ')}",
            hint="fix the migration (or `migrations.command`), then run `conveyor up` again")
