"""Prod's plan step and rollback's schema plan when the project's own tool migrates
(`migrations.command` set): what conveyor can show and check before anything stops.

* the plan: the command that will run (after the verified backup), the tool's own status in a
  temporary container of the NEW image (`status_command`), and the SQL it would run
  (`sql_command`, e.g. `alembic upgrade head --sql`), linted like conveyor's own migrations:
  destructive findings stop the deploy unless --allow-destructive;
* rollback --migrations: `revert_command` in a temporary container of the serving image (it has
  the code of the newer migrations); without it the rollback with --migrations is refused.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError, LintBlocked
from conveyor.imageref import ImageRef
from conveyor.plan import StepIO
from conveyor.state.deploy import DeployState, ProdOptions, RevertPlan
from conveyor.steps import foreign
from conveyor.steps.foreign_remote import run_read
from conveyor.targets.remote import Remote

NOTHING_STOPPED = "nothing was stopped or changed"


@dataclass
class SqlOutput:
    """The SQL a tool prints, as one migration-like object for the lint."""

    version: str
    name: str
    up_sql: str
    up_path: Path
    run_in_transaction: bool = False  # the tool manages its own transactions (BEGIN/COMMIT)


def describe(remote: Remote, opts: ProdOptions) -> list[str]:
    mcfg = remote.cfg.migrations
    out = [(f"the migrations: `{foreign.shown(mcfg.command)}` (the project's tool decides what "
            "is pending), run by the migrate step after the backup")]
    out.append(f"the tool's status: `{foreign.shown(mcfg.status_command)}` in a temporary "
               "container of the new image" if mcfg.status_command else foreign.CANNOT_TELL)
    if mcfg.sql_command:
        out.append(f"the SQL: `{foreign.shown(mcfg.sql_command)}`, linted (squawk + conveyor's "
                   "checks); destructive findings stop here"
                   + (" (allowed: --allow-destructive)" if opts.allow_destructive else ""))
    else:
        out.append("no migrations.sql_command: the tool's SQL is not linted")
    return out


def _read(remote: Remote, image: str, command: list[str], role: str, what: str,
          run_id: str) -> foreign.Outcome:
    res = run_read(remote, image, command, role, run_id)
    if not res.ok:
        raise foreign.failure(what, command, res, where=remote.name, timeout=300,
                              hint=f"{NOTHING_STOPPED}: the previous version keeps serving. "
                              f"Fix migrations.{role.removeprefix('plan-')}_command or the image")
    return res


def foreign_pending(remote: Remote, image: ImageRef, opts: ProdOptions, st: DeployState,
                    io: StepIO) -> None:
    """Prod's plan step for a project whose own tool migrates."""
    from conveyor.migrations.errors import MigrationError
    from conveyor.migrations.lint import lint_migrations
    from conveyor.steps.pending import _counts

    mcfg = remote.cfg.migrations
    details = getattr(st.record, "details", None)
    run_id = st.record.id if getattr(st.record, "id", None) else "plan"
    st.pending = None  # the tool decides: conveyor does not know the pending list
    io.log(f"the migrations: `{foreign.shown(mcfg.command)}` runs after the backup (the "
           "project's tool decides what is pending)")
    status_line = "no status_command"
    if mcfg.status_command:
        res = _read(remote, image.ref, mcfg.status_command, "plan-status", "the status command",
                    run_id)
        io.log(f"$ {foreign.shown(mcfg.status_command)}")
        for line in res.lines:
            io.log(f"  | {line}")
        # the tool's answer is on its standard output (Alembic logs INFO lines on stderr)
        kept = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
        status_line = f"status: {kept[-1] if kept else '(nothing on its standard output)'}"
        if details is not None:
            details["tool_status"] = res.lines
    else:
        io.log(foreign.CANNOT_TELL + " (migrations.status_command shows the tool's status here)")
    if not mcfg.sql_command:
        io.note(f"`{foreign.shown(mcfg.command)}` after the backup; {status_line}; "
                "lint: not run (no sql_command)")
        return
    res = _read(remote, image.ref, mcfg.sql_command, "plan-sql", "the SQL command", run_id)
    sql = res.stdout.strip()
    io.log(f"$ {foreign.shown(mcfg.sql_command)}")
    for line in sql.splitlines():
        io.log(f"    | {line}")
    if not sql:
        io.note(f"{status_line}; the SQL command printed no SQL: nothing to lint")
        return
    with tempfile.TemporaryDirectory(prefix="conveyor-plan-") as tmp:
        path = Path(tmp) / "sql_command.sql"
        path.write_text(sql + "\n")
        try:
            report = lint_migrations([SqlOutput("sql_command", foreign.shown(mcfg.sql_command),
                                                sql + "\n", path)])
        except MigrationError as exc:
            raise ConveyorError(f"the migration lint could not run: {exc}",
                                hint="squawk ships with conveyor (squawk-cli); check the "
                                "installation") from None
        for line in report.render_text(relative_to=Path(tmp)).splitlines():
            io.log(line)
    if details is not None:
        details["lint"] = report.to_dict()
    counts = _counts(report)
    blocked = report.has_destructive or report.has_errors
    if blocked and not opts.allow_destructive:
        raise LintBlocked(
            f"the lint of `{foreign.shown(mcfg.sql_command)}`'s SQL found {counts}: "
            + "; ".join(f"line {f.line}: {f.severity} [{f.rule}] {f.message}"
                        for f in report.findings if f.severity in ("destructive", "error")),
            hint=f"{NOTHING_STOPPED}. Make the migration safe (see the hints above), or, after a "
            "review, deploy with --allow-destructive (the backup step still runs first)")
    if blocked:
        io.log(f"WARNING: {counts} allowed by --allow-destructive")
    io.note(f"{status_line}; lint of the tool's SQL: {counts}"
            + (" (allowed by --allow-destructive)" if blocked else ""))


def foreign_rollback_plan(remote: Remote, opts: ProdOptions, st: DeployState,
                          io: StepIO) -> None:
    """Rollback's schema plan for a project whose own tool migrates."""
    mcfg = remote.cfg.migrations
    st.revert = None
    if not opts.migrations:
        io.log("WARNING: the migration tool's migrations stay applied: conveyor cannot tell "
               "which of them the target version lacks; --migrations runs "
               "migrations.revert_command")
        io.note("the tool's migrations stay applied (no --migrations)")
        return
    if not mcfg.revert_command:
        raise ConveyorError(
            "rollback --migrations needs migrations.revert_command: the project's own tool "
            f"(`{foreign.shown(mcfg.command)}`) applied the migrations and conveyor cannot "
            "revert what it did not write",
            hint="set migrations.revert_command (e.g. [\"alembic\", \"downgrade\", \"-1\"]), "
            "roll back without --migrations, or restore the pre-deploy backup "
            f"(`conveyor restore {remote.name} BACKUP`)")
    if not st.serving_image:
        raise ConveyorError("nothing serves: no image to run migrations.revert_command in")
    st.revert = RevertPlan([], st.serving_image, [foreign.shown(mcfg.revert_command)])
    io.log(f"will run `{foreign.shown(mcfg.revert_command)}` in a temporary container of "
           f"{st.serving_image} (it has the code of the newer migrations)")
    io.note(f"revert: `{foreign.shown(mcfg.revert_command)}`")
