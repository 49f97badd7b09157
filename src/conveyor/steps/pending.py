"""The prod stage's plan step: the pending migrations of the NEW image against the database,
shown and linted before anything stops; destructive (or failing) findings stop the deploy."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from conveyor import host
from conveyor.errors import ConveyorError, DatabaseAhead, LintBlocked
from conveyor.imageref import ImageRef
from conveyor.migrations import queries
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps.image import fetch_image_migrations, image_files_argv
from conveyor.steps.migrate import nothing_to_migrate
from conveyor.targets.remote import Remote

APPLIED_QUERY_NOTE = "(the applied migrations, read in the lock step's round trip)"


def applied_versions(rows: list[str] | None) -> list[str] | None:
    """Applied versions from the applied-migrations query's rows, sorted; None if unknown."""
    return None if rows is None else queries.applied_versions(rows)


def applied_now(remote: Remote) -> list[str] | None:
    """The versions the database has applied (Diesel's table), read now by psql in the
    database container (`remote_status.applied_rows`: no table yet is none applied); None if
    unknown or the database is reached by URL."""
    from conveyor.remote_status import applied_rows

    return applied_versions(applied_rows(remote))


def db_applied(remote: Remote, st: DeployState, image_ref: str) -> list[str]:
    """Applied versions: from the lock step's read, else by the engine in a temporary
    container of `image_ref` (a database reached by URL, or Diesel's table not there yet)."""
    from conveyor.remote_status import migration_status

    versions = applied_versions(st.db_applied)
    if versions is not None:
        return versions
    status = migration_status(remote, image_ref)
    if not status["ok"]:
        raise ConveyorError(f"cannot read the applied migrations of {remote.name}: "
                            f"{status['error']}")
    return sorted(a["version"] for a in status["applied"])


def _counts(report: Any) -> str:
    return ", ".join(f"{report.count(s)} {s}" + ("s" if s != "destructive"
                                                  and report.count(s) > 1 else "")
                     for s in ("error", "destructive", "warning") if report.count(s)) or "clean"


def pending_step(remote: Remote, image: ImageRef, opts: ProdOptions) -> Step[DeployState]:
    """The pending migrations (in the new image, not applied in the database), shown and
    linted; destructive (or failing) findings stop here, before anything stops."""

    def action(st: DeployState, io: StepIO) -> None:
        from conveyor.migrations.errors import MigrationError
        from conveyor.migrations.lint import lint_migrations

        if remote.cfg.migrations.command:  # the project's own tool: steps/foreign_plan.py
            from conveyor.steps.foreign_plan import foreign_pending

            foreign_pending(remote, image, opts, st, io)
            return
        details = getattr(st.record, "details", None)
        skip = nothing_to_migrate(remote, st)
        if skip:
            st.pending = []
            io.note(skip)
            return
        with tempfile.TemporaryDirectory(prefix="conveyor-plan-") as tmp:
            migrations = fetch_image_migrations(remote, image.ref, Path(tmp))
            applied = db_applied(remote, st, image.ref)
            versions = {m.version for m in migrations}
            ahead = [v for v in applied if v not in versions]
            if ahead and not remote.cfg.migrations.command:
                raise DatabaseAhead(
                    f"the {remote.name} database has applied {len(ahead)} migration(s) that "
                    f"{image.ref} does not have: {', '.join(ahead)}",
                    hint="deploy an image that has them, or revert them first (`conveyor "
                    f"rollback {remote.name} --migrations`)")
            pending = [m for m in migrations if m.version not in set(applied)]
            st.pending = [m.name for m in pending]
            if details is not None:
                details["pending"] = list(st.pending)
                if st.migration_classes is None and pending:
                    # recreate: no classify step ran; the rollback guard reads the classes
                    from conveyor.migrations.classify import classify

                    st.migration_classes = {c.migration: c.kind for c in classify(pending)}
                    details["migration_classes"] = dict(st.migration_classes)
            if not pending:
                io.note(f"nothing pending ({len(applied)} applied)")
                return
            io.log(f"{len(pending)} pending migration(s), in the order they will run:")
            for m in pending:
                io.log(f"  {m.name}" + ("" if m.run_in_transaction else
                                        "  (run_in_transaction = false)"))
                for line in m.up_sql.strip().splitlines():
                    io.log(f"    | {line}")
            try:
                report = lint_migrations(pending)
            except MigrationError as exc:
                raise ConveyorError(f"the migration lint could not run: {exc}",
                                    hint="squawk ships with conveyor (squawk-cli); check the "
                                    "installation") from None
            if details is not None:
                details["lint"] = report.to_dict()
            for line in report.render_text(relative_to=Path(tmp)).splitlines():
                io.log(line)
        counts = _counts(report)
        blocked = report.has_destructive or report.has_errors
        if blocked and not opts.allow_destructive:
            raise LintBlocked(
                f"the lint of the pending migrations found {counts}: "
                + "; ".join(f"{f.migration}/up.sql:{f.line}: {f.severity} [{f.rule}] "
                            f"{f.message}" for f in report.findings
                            if f.severity in ("destructive", "error")),
                hint="nothing was stopped or changed. Make the migration safe (see the hints "
                "above), or, after a review, deploy with --allow-destructive (the backup "
                "step still runs first)")
        if blocked:
            io.log(f"WARNING: {counts} allowed by --allow-destructive")
        io.note(f"{len(pending)} pending: {', '.join(m.name for m in pending)}; lint: {counts}"
                + (" (allowed by --allow-destructive)" if blocked else ""))

    if remote.cfg.migrations.command:
        from conveyor.steps.foreign_plan import describe as foreign_describe

        return Step("plan", action, describe=foreign_describe(remote, opts),
                    reads=("image_labels", "db_applied"), writes=("pending",))
    return Step("plan", action, describe=[
        host.shown(image_files_argv(remote, image.ref, remote.cfg.migrations.container_dir)),
        "pending = the image's migrations not applied in the database "
        + APPLIED_QUERY_NOTE + "; lint them (squawk + conveyor's checks); destructive "
        "findings stop here" + ("" if not opts.allow_destructive else
                                " (allowed: --allow-destructive)")],
        reads=("image_labels", "db_applied"), writes=("pending",))
