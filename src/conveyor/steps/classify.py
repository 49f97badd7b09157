"""The zero-downtime deploy's classify step (each pending migration expand or contract; a
contract one is refused unless `--strategy recreate`), and the rollback guard (no app rollback
to a version older than the last contract migration applied, unless `--force`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from conveyor import host
from conveyor.errors import LintBlocked, NoRollbackTarget
from conveyor.imageref import ImageRef
from conveyor.migrations.classify import CONTRACT, classify, classify_sql, refusal
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.steps.image import fetch_image_migrations, image_files_argv
from conveyor.steps.migrate import nothing_to_migrate
from conveyor.steps.pending import db_applied
from conveyor.targets.remote import Remote

#: the name of a project tool's SQL (`migrations.sql_command`) among the classified migrations
TOOL_SQL = "migrations.sql_command"


class ContractRefused(LintBlocked):
    """A contract migration pending under strategy = "zero-downtime" (refused before anything
    changed, like a lint block)."""


class RollbackPastContract(NoRollbackTarget):
    """A rollback to a version older than a contract migration applied since."""


def classify_step(remote: Remote, image: ImageRef, *, allow_contract: bool) -> Step[DeployState]:
    """Classify the new image's pending migrations; the classes go into the record (the
    rollback guard reads them). A contract one stops the deploy here unless allowed."""

    def action(st: DeployState, io: StepIO) -> None:
        if remote.cfg.migrations.command:  # a project's own tool: its SQL, if it prints it
            return classify_tool(remote, image, st, io, allow_contract=allow_contract)
        skip = nothing_to_migrate(remote, st)
        if skip:
            st.migration_classes = {}
            io.note(skip)
            return
        with tempfile.TemporaryDirectory(prefix="conveyor-classify-") as tmp:
            migrations = fetch_image_migrations(remote, image.ref, Path(tmp))
            applied = set(db_applied(remote, st, image.ref))
        pending = [m for m in migrations if m.version not in applied]
        result = classify(pending)
        judge(result, st, io, allow_contract=allow_contract)

    return Step("classify", action, describe=[
        host.shown(image_files_argv(remote, image.ref, remote.cfg.migrations.container_dir))
        if not remote.cfg.migrations.command else
        (f"`{' '.join(remote.cfg.migrations.sql_command)}` in a temporary container of the new "
         "image: the SQL the project's tool would run" if remote.cfg.migrations.sql_command
         else "migrations.command without sql_command: the tool's changes cannot be classified"),
        "each pending migration: expand (the serving version lives with it) or contract "
        "(drop, rename, type change, SET NOT NULL, ...)"
        + ("; a contract one stops here" if not allow_contract else "")],
        reads=("image_labels", "db_applied"), writes=("migration_classes",))


def classify_tool(remote: Remote, image: ImageRef, st: DeployState, io: StepIO, *,
                  allow_contract: bool) -> None:
    """The classify step when the project's own tool migrates: the SQL its `sql_command`
    prints (e.g. `alembic upgrade current:head --sql`), classified as one migration. Without
    `sql_command` conveyor cannot tell whether the serving version lives with the new schema:
    refused unless --strategy recreate."""
    from conveyor.steps import foreign
    from conveyor.steps.foreign_remote import run_read

    mcfg = remote.cfg.migrations
    if not mcfg.sql_command:
        if allow_contract:
            st.migration_classes = {}
            io.note("not classified (no migrations.sql_command); allowed: --strategy recreate")
            return
        raise ContractRefused(
            f"a zero-downtime deploy runs the migrations while the old version serves, and "
            f"conveyor cannot tell whether `{foreign.shown(mcfg.command)}` only expands the "
            "schema: migrations.sql_command is not set",
            hint="nothing was changed: the old version keeps serving. Set migrations.sql_command "
            "to the command printing the tool's SQL (e.g. alembic ... --sql, see "
            "docs/migration-tools.md), or deploy with --strategy recreate")
    res = run_read(remote, image.ref, mcfg.sql_command, "classify-sql",
                   getattr(st.record, "id", None))
    if not res.ok:
        raise foreign.failure("the SQL command", mcfg.sql_command, res, where=remote.name,
                              timeout=300, hint="nothing was changed: the old version keeps "
                              "serving. Fix migrations.sql_command or the image")
    sql = res.stdout.strip()
    result = [classify_sql(TOOL_SQL, sql)] if sql else []
    judge(result, st, io, allow_contract=allow_contract)


def judge(result: list[Any], st: DeployState, io: StepIO, *, allow_contract: bool) -> None:
    """Record the classes, log the findings; a contract one stops the deploy unless allowed."""
    st.migration_classes = {c.migration: c.kind for c in result}
    details = getattr(st.record, "details", None)
    if details is not None:
        details["migration_classes"] = dict(st.migration_classes)
    for c in result:
        io.log(f"  {c.migration}: {c.kind}")
        for f in c.findings:
            io.log(f"    line {f.line}: {f.statement} ({f.what}): {f.hint}")
    message = refusal(result)
    if message and not allow_contract:
        raise ContractRefused(
            message, hint="nothing was changed: the old version keeps serving. Split the "
            "migration (expand now, contract in a later deploy), or deploy it with "
            "--strategy recreate (stop, migrate, start: a short downtime)")
    kinds = [c.kind for c in result]
    io.note(f"{kinds.count('expand')} expand, {kinds.count(CONTRACT)} contract"
            + (" (allowed: --strategy recreate)" if message else "") if result
            else "nothing pending")


def contracts_since(entries: list[dict[str, Any]], target_image: str,
                    to: str | None) -> list[tuple[str, str]]:
    """(deployment id, migration) of each contract migration applied after the deployment
    that put `target_image` in place (`to`, else the last one of that image), oldest first."""
    ids = [e.get("id") for e in entries]
    if to and to in ids:
        start = ids.index(to)
    else:
        of_target = [i for i, e in enumerate(entries) if e.get("image") == target_image]
        start = of_target[-1] if of_target else -1
    found: list[tuple[str, str]] = []
    for e in entries[start + 1:]:
        classes = (e.get("details") or {}).get("migration_classes") or {}
        names = list(e.get("migrations_applied") or [])
        if TOOL_SQL in classes and e.get("result") == "ok":  # the project's tool ran its SQL
            names.append(TOOL_SQL)
        for name in names:
            if classes.get(name) == CONTRACT:
                found.append((str(e.get("id")), name))
    return found


def rollback_guard(remote: Remote, entries: list[dict[str, Any]], target: ImageRef,
                   to: str | None, *, force: bool, migrations: bool) -> str | None:
    """Refuse (raise) a rollback past a contract migration; with --force, the warning."""
    if migrations:  # the schema goes back too: the target meets the schema it knows
        return None
    found = contracts_since(entries, target.ref, to)
    if not found:
        return None
    dep, name = found[-1]
    why = (f"{target.ref} is older than the contract migration {name} (applied by deployment "
           f"{dep}): that version would meet a schema it does not know")
    if force:
        return f"WARNING: {why}; rolling back anyway because of --force"
    raise RollbackPastContract(
        f"refusing to roll {remote.name} back: {why}",
        hint="roll back to a version deployed after it, revert the schema too (--migrations), "
        "or pass --force")
