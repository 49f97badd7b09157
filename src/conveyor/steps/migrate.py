"""The migrate step: pending migrations applied in a temporary container of the new image, on
the database's network (conveyor's engine shipped on stdin, or `migrations.command`).

Skipped when the image's migrations fingerprint equals what the database has applied (read in
the lock step's round trip): nothing to migrate, no container started.
"""

from __future__ import annotations

from conveyor import host
from conveyor.errors import MigrationStepFailed
from conveyor.imageref import ImageRef
from conveyor.plan import Step, StepIO
from conveyor.records import actor
from conveyor.state.deploy import DeployState
from conveyor.steps import foreign_remote as foreign
from conveyor.steps import migrate_engine as engine
from conveyor.targets.remote import Remote, tail

#: what a failed migration means for the app, by stage
DEV_HINT = ("the app was not touched: the previous version keeps serving. Fix the migration (a "
            "new one, if the failing one was applied elsewhere) and deploy again")
PROD_HINT = "the previous version is started again; what serves and what the database holds: above"
#: what `deploy --allow-drift` does, said loudly in the step's output (and kept in the record)
ALLOW_DRIFT_WARNING = ("WARNING: --allow-drift: the pending migrations run even though applied "
                       "migrations differ from their files (drift); the database keeps the "
                       "applied versions, and this deployment's record says --allow-drift")


def drift_hint(remote: Remote) -> str:
    """The hint of a migration refused for drift: the option `deploy` really has."""
    return (f"restore the original migration files (e.g. from git) and build again, or put the "
            f"change in a new migration; if the difference is intended, `conveyor deploy "
            f"{remote.name} --allow-drift` runs the pending migrations anyway (loud, recorded)")


def nothing_to_migrate(remote: Remote, st: DeployState) -> str | None:
    """A note when the database provably holds exactly the image's migrations, else None."""
    if remote.cfg.migrations.command or not remote.managed_db:
        return None
    image_fp = st.image_labels.get(engine.FINGERPRINT_LABEL)
    if not image_fp or st.db_applied is None:
        return None
    if engine.applied_fingerprint(st.db_applied) != image_fp:
        return None
    count = image_fp.split(":", 1)[0]
    return (f"nothing to migrate: the database has applied exactly the image's {count} "
            "migrations (versions and checksums)")


def copy_out(remote: Remote, io: StepIO, image_ref: str, dest: str) -> None:
    """The image's migrations into `dest` on the host (the engine container mounts it)."""
    r = io.run(engine.copy_out_argv(remote, image_ref, dest), check=False, timeout=300)
    if r.returncode != 0:
        raise MigrationStepFailed(
            f"cannot copy the migrations out of {image_ref} "
            f"({remote.cfg.migrations.container_dir}): {tail(r.stderr + r.stdout)}",
            hint="migrations.container_dir must be where the image holds its migrations")


def migrate_step(remote: Remote, image: ImageRef, deployment_id: str, *,
                 hint: str = DEV_HINT, allow_drift: bool = False) -> Step[DeployState]:
    mcfg = remote.cfg.migrations
    name = remote.container_name("migrate", deployment_id)
    labels = remote.labels("migrate", **{"conveyor.deployment": deployment_id})
    files = engine.migrations_dir(remote, deployment_id)
    if mcfg.command:
        env_path = f"{remote.state_dir}/migrate-{deployment_id}.env"
        run_argv = engine.user_command_argv(image.ref, mcfg.command, name=name,
                                            network=remote.network, env_file=env_path,
                                            labels=labels)
        argv = host.argv("with_env_file", env_path, *run_argv)
        describe: list = [host.shown(argv),
                          ("stdin: env file with the app's environment and DATABASE_URL "
                           "(0600, removed afterwards); stopped and removed after "
                           f"{mcfg.timeout:g} s")]
    else:
        argv = engine.engine_argv("<conveyor's runner image>", files, name=name,
                                  network=remote.network, labels=labels)
        describe = [host.shown(engine.copy_out_argv(remote, image.ref, files)), argv,
                    ("stdin: a JSON header with DATABASE_URL (never in argv); the engine runs in "
                    "conveyor's runner image, the app image only gives its migrations")]
        if allow_drift:
            describe.append("--allow-drift: the pending migrations run despite drift")
    if not mcfg.command and remote.managed_db:
        describe.append(f"(not started when the image's label {engine.FINGERPRINT_LABEL} equals "
                        "the fingerprint of the migrations the database has applied, read in "
                        "the lock step: nothing to migrate)")

    def action(st: DeployState, io: StepIO) -> None:
        skip = nothing_to_migrate(remote, st)
        if skip:
            st.migrations_applied = []
            io.note(skip)
            return
        if mcfg.command:
            foreign.run_remote(remote, io, argv, name=name, env_path=env_path, hint=hint,
                               backup=st.backup)
            st.migrations_applied = []
            return
        url = remote.database_url()

        def sink(line: str) -> None:
            if not line.startswith(engine.RESULT_MARK):
                io.log(line)

        if allow_drift:
            io.log(ALLOW_DRIFT_WARNING)
        copy_out(remote, io, image.ref, files)
        run = engine.engine_argv(engine.engine_image(remote), files, name=name,
                                 network=remote.network, labels=labels)
        stdin = engine.engine_stdin(
            "run", url, lock_timeout=mcfg.lock_timeout,
            applied_by=f"{actor()} via conveyor deploy {remote.name}", allow_drift=allow_drift)
        assert io.transport is not None
        r = io.transport.run(run, input=stdin, stream=sink, check=False, timeout=None)
        parsed = engine.parse_output(r.stdout)
        st.migrate_result = parsed.result
        if r.returncode != 0:
            res = parsed.result or {}
            message = res.get("text") or res.get("message") or tail(r.stderr or r.stdout)
            if res.get("error") == "DriftError":  # the engine's hint names its own CLI's option
                message = (res.get("message") or message).split(" Restore the original")[0]
                raise MigrationStepFailed(f"migration refused on {remote.name}: {message}",
                                          hint=f"{drift_hint(remote)}. "
                                          f"{hint[:1].upper()}{hint[1:]}")
            raise MigrationStepFailed(f"migration failed on {remote.name}: {message}", hint=hint)
        st.migrations_applied = parsed.applied
        io.note(f"applied {len(parsed.applied)}: {', '.join(parsed.applied)}"
                if parsed.applied else ("nothing to migrate" if parsed.result else "done"))
        if allow_drift:
            io.note("--allow-drift")

    return Step("migrate", action, describe=describe,
                reads=("image_labels", "db_applied"),
                writes=("migrate_result", "migrations_applied"))
