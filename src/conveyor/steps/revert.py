"""Rollback's schema steps: which applied migrations the target image lacks (reverted with
--migrations, through an image that has their down.sql, or left applied), and the revert itself
in a temporary container (conveyor's engine, `revert` command)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from conveyor import host
from conveyor.errors import ConveyorError, MigrationStepFailed
from conveyor.imageref import ImageRef
from conveyor.plan import Step, StepIO
from conveyor.records import actor
from conveyor.state.deploy import DeployState, ProdOptions, RevertPlan
from conveyor.steps import migrate_engine as engine
from conveyor.steps.image import fetch_image_migrations, image_files_argv, pull_argv
from conveyor.steps.pending import db_applied
from conveyor.steps.record import read_history
from conveyor.targets.remote import Remote, tail


def _revert_image(remote: Remote, st: DeployState, extra: list[str],
                  io: StepIO) -> tuple[str, list[Any]]:
    """An image with the down.sql of `extra`: the serving one, else one that applied them."""
    from conveyor.migrations import version_from_name

    candidates: list[str] = [st.serving_image] if st.serving_image else []
    for e in reversed(read_history(remote, 5000)):
        vs = {version_from_name(n) for n in e.get("migrations_applied") or []}
        if vs & set(extra) and e.get("image") and e["image"] not in candidates:
            candidates.append(e["image"])
    for cand in candidates:
        r = io.run(pull_argv(ImageRef.parse(cand)), check=False, timeout=1800)
        if r.returncode != 0:
            io.log(f"{cand}: not available ({tail(r.stderr)})")
            continue
        with tempfile.TemporaryDirectory(prefix="conveyor-rollback-") as tmp:
            migs = {m.version: m for m in fetch_image_migrations(remote, cand, Path(tmp))}
            if all(v in migs and migs[v].down_sql is not None for v in extra):
                return cand, [migs[v] for v in reversed(extra)]
        io.log(f"{cand} lacks the down.sql of some of them")
    raise ConveyorError(f"no image with the down.sql of {', '.join(extra)} is available",
                        hint="revert them by hand (`conveyor migrate revert`)")


def rollback_plan_step(remote: Remote, target: ImageRef, opts: ProdOptions) -> Step[DeployState]:
    """What the rollback does to the schema: the applied migrations the target image does not
    have are reverted (--migrations) through an image that has their down.sql, or stay."""

    def action(st: DeployState, io: StepIO) -> None:
        io.log(f"serving now: {st.serving_image or '(nothing)'}")
        io.log(f"rolling back to: {target.ref}")
        if remote.cfg.migrations.command:  # the project's own tool: revert_command
            from conveyor.steps.foreign_plan import foreign_rollback_plan

            foreign_rollback_plan(remote, opts, st, io)
            return
        with tempfile.TemporaryDirectory(prefix="conveyor-rollback-") as tmp:
            target_migs = fetch_image_migrations(remote, target.ref, Path(tmp) / "target")
        known = {m.version for m in target_migs}
        applied = db_applied(remote, st, target.ref)
        extra = [v for v in applied if v not in known]
        missing = [m.name for m in target_migs if m.version not in set(applied)]
        if missing:
            io.log(f"note: the target image has migrations the database has not applied: "
                   f"{', '.join(missing)} (a rollback applies none)")
        st.revert = None
        if not extra:
            io.note("schema: the database has no migration the target image lacks")
            return
        if not opts.migrations:
            io.log(f"WARNING: {len(extra)} applied migration(s) are not in the target image and "
                   f"stay applied: {', '.join(extra)}. The target version must cope with them; "
                   "--migrations reverts them.")
            io.note(f"{len(extra)} migration(s) stay applied (no --migrations)")
            return
        newest = applied[-len(extra):]
        if sorted(newest) != sorted(extra):
            raise ConveyorError(
                f"cannot revert {', '.join(extra)}: they are not the newest applied migrations "
                f"(newest: {', '.join(newest)})", hint="revert by hand with `conveyor migrate "
                "revert`, or roll back without --migrations")
        image_ref, migs_newest_first = _revert_image(remote, st, extra, io)
        st.revert = RevertPlan(list(reversed(extra)), image_ref,
                               [m.name for m in migs_newest_first])
        details = getattr(st.record, "details", None)
        if details is not None:
            details["revert_plan"] = st.revert.as_dict()
        io.log(f"will revert, newest first, with the down.sql in {image_ref}:")
        for m in migs_newest_first:
            io.log(f"  {m.name}")
            for line in (m.down_sql or "").strip().splitlines():
                io.log(f"    | {line}")
        io.note(f"revert {len(extra)}: {', '.join(m.name for m in migs_newest_first)}")

    return Step("plan", action, describe=[
        host.shown(image_files_argv(remote, target.ref, remote.cfg.migrations.container_dir)),
        "applied migrations the target image lacks: "
        + ("reverted (newest first) by an image that has their down.sql" if opts.migrations
           else "stay applied (no --migrations)")], reads=("current", "db_applied"),
        writes=("revert",))


def revert_argv(remote: Remote, runner_image: str, deployment_id: str) -> tuple[str, ...]:
    """The engine (in conveyor's runner image) with the down.sql copied out of the image that
    has them."""
    return engine.engine_argv(runner_image, engine.migrations_dir(remote, deployment_id, "revert"),
                              name=remote.container_name("revert", deployment_id),
                              network=remote.network,
                              labels=remote.labels("revert",
                                                   **{"conveyor.deployment": deployment_id}))


def revert_step(remote: Remote, deployment_id: str) -> Step[DeployState]:
    def action(st: DeployState, io: StepIO) -> None:
        rv = st.revert
        if not rv:
            io.note("nothing to revert")
            return
        mcfg = remote.cfg.migrations
        if mcfg.command:  # the project's own tool: revert_command in the serving image
            from conveyor.steps.foreign_remote import run_remote, tool_argv

            argv, name, env_path = tool_argv(remote, rv.image, mcfg.revert_command, "revert",
                                             deployment_id)
            run_remote(remote, io, argv, name=name, env_path=env_path, command=mcfg.revert_command,
                       what="the revert command", hint="the previous version is started again; "
                       "what serves and what the database holds: above", backup=st.backup)
            st.migrations_reverted = list(rv.names)
            return
        files = engine.migrations_dir(remote, deployment_id, "revert")
        r = io.run(engine.copy_out_argv(remote, rv.image, files), check=False, timeout=300)
        if r.returncode != 0:
            raise MigrationStepFailed(f"cannot copy the migrations out of {rv.image}: "
                                      f"{tail(r.stderr + r.stdout)}")
        stdin = engine.engine_stdin("revert", remote.database_url(),
                                    lock_timeout=mcfg.lock_timeout,
                                    applied_by=f"{actor()} via conveyor rollback {remote.name}",
                                    versions=rv.versions)

        def sink(line: str) -> None:
            if not line.startswith(engine.RESULT_MARK):
                io.log(line)

        assert io.transport is not None
        r = io.transport.run(revert_argv(remote, engine.engine_image(remote), deployment_id),
                             input=stdin, stream=sink, check=False, timeout=None)
        parsed = engine.parse_output(r.stdout)
        st.migrate_result = parsed.result
        res = parsed.result or {}
        if r.returncode != 0 or not res.get("ok"):
            raise MigrationStepFailed(
                f"reverting migrations on {remote.name} failed: "
                f"{res.get('text') or res.get('message') or tail(r.stderr or r.stdout)}",
                hint="the previous version is started again; what serves and what the database "
                "holds: above")
        done = [s.get("name") or s.get("version") for s in res.get("reverted", [])]
        st.migrations_reverted = done
        io.note(f"reverted {len(done)}: {', '.join(done)}")

    return Step("revert", action, describe=[
        host.shown(engine.copy_out_argv(remote, "<image with the down.sql>",
                                        engine.migrations_dir(remote, deployment_id, "revert"))),
        revert_argv(remote, "<conveyor's runner image>", deployment_id),
        "stdin: a JSON header (DATABASE_URL, the versions to revert)"], reads=("revert",), writes=("migrate_result", "migrations_reverted"))
