"""After a prod plan (deploy, rollback, restore): what serves and what the database holds, in
words, with the commands that go further back; kept in the record and shown on failure."""

from __future__ import annotations

from typing import Any

from conveyor.errors import ConveyorError
from conveyor.plan import PlanResult, Step, StepIO, StepResult
from conveyor.state.deploy import DeployState
from conveyor.steps.pending import applied_now, applied_versions
from conveyor.targets.remote import Remote


def outcome(remote: Remote, st: DeployState, result: PlanResult,
            applied_after: list[str] | None = None,
            further_back: bool = True) -> dict[str, Any]:
    """What serves and what the database holds after a prod plan, in words, plus the commands
    that go further back. Facts only: the plan's state and result, the migrations applied now
    (`applied_after`, read after the failure; None: unknown), whether an older version exists
    to roll back to (`further_back`)."""
    env = remote.name
    out: dict[str, Any] = {"ok": result.ok, "lines": [], "commands": []}
    lines: list[str] = out["lines"]
    if result.ok:
        return out
    failed = next((s.name for s in result.steps if s.status == "failed"), None)
    out["failed_step"] = failed
    names = [s.name for s in result.steps]
    stopped = st.stopped_old
    fb = st.fallback
    prev_image = st.serving_image
    prev_dep = st.serving_deployment
    backup = st.backup or {}
    applied = list(st.migrations_applied)
    reverted = list(st.migrations_reverted)

    if failed == "stop":
        lines.append(f"Stopping {remote.app_container} failed: check `conveyor status {env}`. "
                     "The database was not changed.")
        return out
    # zero-downtime: the migrations ran while the old version served (no stop step)
    beside = "stop" not in names and "migrate" in names
    if "stop" not in names and not beside:
        unchanged = "the database was not changed" + (" (a backup was taken)" if backup else "")
        if st.lock_id is not None and not st.current:
            # the lock step read the host: no app container, so nothing served before
            lines.append("There was no previous version (first deployment): nothing serves "
                         f"{remote.url}, and {unchanged}.")
        elif st.lock_id is None:
            # the host's state was never read (the lock was not taken)
            lines.append(f"Nothing was stopped, and {unchanged}.")
        else:
            lines.append(f"Nothing was stopped: the previous version kept serving throughout, "
                         f"and {unchanged}.")
        return out

    # what serves now
    if beside and not st.current:
        lines.append("There was no previous version (first deployment): nothing serves "
                     f"{remote.url}.")
    elif beside:
        switched = "switch" in names and failed != "switch"
        lines.append("Nothing was stopped: the previous version kept serving throughout"
                     + (" (the proxy was switched back to it)" if switched else "") + ".")
    elif fb and fb.get("ok"):
        lines.append(f"The previous version is serving again: {fb['url']} answers HTTP "
                     f"{fb['status']} ({prev_image or remote.app_container}).")
    elif stopped:
        lines.append(f"WARNING: the previous version did NOT come back: "
                     f"{(fb or {}).get('error') or 'its container could not be started'}. "
                     f"Check `conveyor status {env}` and `conveyor logs {env} app`.")
    elif not st.current:
        lines.append("There was no previous version to go back to (first deployment): nothing "
                     "serves.")
    if failed in ("start", "health", "validate") and "start" in names:
        lines.append(f"The new container is kept (stopped) as {remote.failed_container}: "
                     f"`docker logs {remote.failed_container}` on {remote.host} shows its log.")

    # what the database holds
    changed: list[str] = []
    if failed in ("migrate", "revert"):
        before = set(applied_versions(st.db_applied) or [])
        after = applied_after
        res = st.migrate_result or {}
        if after is None:
            lines.append("The state of the migrations could not be read after the failure: run "
                         f"`conveyor status {env}`.")
        else:
            committed = sorted(set(after) - before)
            undone = sorted(before - set(after))
            if failed == "migrate":
                if committed:
                    changed = committed
                    lines.append("Migrations committed before the failure stay applied: "
                                 f"{', '.join(committed)}. The previous version runs on that "
                                 "schema and must cope with it.")
                if res.get("rolled_back") is False:
                    lines.append(f"{res.get('name')} has run_in_transaction = false: statements "
                                 "before the failing one may have been committed. Check the "
                                 "schema before deploying again.")
                elif not committed:
                    lines.append("The database schema is unchanged: the failing migration ran in "
                                 "a transaction, which was rolled back "
                                 f"({len(after)} migrations applied, as before).")
            else:
                if undone:
                    lines.append(f"Reverted before the failure (stay reverted): "
                                 f"{', '.join(undone)}.")
                else:
                    lines.append("The database schema is unchanged: the failing down migration "
                                 "was rolled back.")
    elif applied:
        changed = applied
        lines.append(f"The migrations this deployment applied stay applied: {', '.join(applied)}."
                     " The previous version now runs on the new schema and must cope with it "
                     "(additive changes usually are fine).")
    elif reverted:
        lines.append(f"The migrations this rollback reverted stay reverted: {', '.join(reverted)}."
                     " The previous version runs on the older schema.")
    elif failed not in ("migrate", "revert"):
        lines.append("This deployment changed no migrations: the database schema is as it was.")

    # further back
    cmds: list[str] = out["commands"]
    if not changed and failed not in ("start", "health", "validate"):
        return out
    if changed and prev_dep:
        cmds.append(f"conveyor rollback {env} --to {prev_dep} --migrations"
                    f"    # revert {', '.join(changed)} (down.sql), keep the previous version")
    if further_back:
        cmds.append(f"conveyor rollback {env} [--migrations]"
                    "    # the version before the previous one (and its schema)")
    if backup.get("id"):
        cmds.append(f"conveyor restore {env} {backup['id']}"
                    f"    # the database as it was before this deployment ({backup.get('file')})")
    return out



def result_from_record(st: DeployState) -> PlanResult:
    """The main plan's result as the deployment left it in the record (before finalize)."""
    record = st.record
    steps = [StepResult(s["name"], s["status"], s["duration"], s.get("notes") or [],
                        s.get("output") or [], s.get("error")) for s in record.steps]
    return PlanResult(record.kind, record.result != "failed", steps, record.duration or 0.0,
                      None)


def report_step(remote: Remote) -> Step[DeployState]:
    """Finalize: work out what serves and what the database holds; keep it in the record."""

    def action(st: DeployState, io: StepIO) -> None:
        from conveyor.plans.rollback import rollback_target

        result = result_from_record(st)
        applied = applied_now(remote) if result.failed_step in ("migrate", "revert") else None
        further = False
        if not result.ok and result.failed_step != "stop" and (
                result.step("stop") is not None or result.step("migrate") is not None):
            try:
                rollback_target(remote, None)
                further = True
            except ConveyorError:
                further = False
        out = outcome(remote, st, result, applied_after=applied, further_back=further)
        st.outcome = out
        details = getattr(st.record, "details", None)
        if details is not None:
            details["outcome"] = out
            if st.migrations_reverted:
                details["migrations_reverted"] = st.migrations_reverted
            if st.validation:
                details["validation"] = st.validation
        for line in out["lines"]:
            io.log(line)
        io.note("ok" if out["ok"] else f"failed at {out.get('failed_step')}")

    return Step("report", action, describe=[("what serves and what the database holds, in the "
                                            "record and on the terminal")],
                writes=("outcome",))


def outcome_text(st: DeployState) -> list[str]:
    """After a failed prod plan, in plain lines (redacted): what serves, what the database holds
    and the commands that go further back (indented under "To go further back:")."""
    out = st.outcome or {}
    lines = list(out.get("lines", []))
    if out.get("commands"):
        lines.append("To go further back:")
        lines += ["  " + cmd for cmd in out["commands"]]
    return [st.remote.redactor(line) for line in lines]
