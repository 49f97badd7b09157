"""Recovery of a run whose runner died (killed, Docker restarted, host rebooted): the next
runner for the environment reads the journal, lets the run's temporary containers end, undoes
in reverse every step that had started (from the state saved as the last step began), records
the deployment as interrupted and recovered, and releases the lock. A committed migration stays
committed; the undo puts back the version that served before."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conveyor.commands import docker
from conveyor.plan import Plan, StepIO, execute
from conveyor.records import step_entries
from conveyor.runner import journal as jr
from conveyor.runner.job import Job, build
from conveyor.steps.lock import unlock_argv
from conveyor.steps.pending import applied_now
from conveyor.steps.record import record_step
from conveyor.targets.remote import Remote
from conveyor.transport import LocalTransport

TEMPORARY_WAIT = 900.0  # a migration still running is let finish (bounded), then removed


def _temporaries(remote: Remote, run_id: str) -> list[str]:
    r = remote.transport.run(("docker", "ps", "-q", "--filter",
                              f"label=conveyor.deployment={run_id}", "--filter",
                              "label=conveyor.role"), check=False, timeout=60)
    names = []
    for cid in r.stdout.split():
        role = remote.transport.run(docker.inspect(cid, '{{index .Config.Labels "conveyor.role"}}'),
                                    check=False, timeout=60).stdout.strip()
        if role in ("migrate", "revert", "inspect"):
            names.append(cid)
    return names


def wait_temporaries(remote: Remote, run_id: str, log: Any) -> None:
    """No migration container outlives its run: wait for it (bounded), else remove it."""
    deadline = time.monotonic() + TEMPORARY_WAIT
    for cid in _temporaries(remote, run_id):
        log(f"waiting for the run's temporary container {cid} to end")
        left = max(1.0, deadline - time.monotonic())
        r = remote.transport.run(("docker", "wait", cid), check=False, timeout=left)
        if not r.ok:
            remote.transport.run(docker.rm(cid, force=True), check=False, timeout=120)
            log(f"removed {cid} (still running after {TEMPORARY_WAIT:g} s)")


def _main_events(events: list[dict[str, Any]], main: str) -> tuple[list[str], dict | None]:
    started: list[str] = []
    finished = None
    for e in events:
        if e.get("event") == "plan_started" and e.get("plan") != main:
            break  # the finalize steps
        if e.get("event") == "step_started":
            started.append(e["step"])
        if e.get("event") == "plan_finished" and e.get("plan") == main:
            finished = e
    return started, finished


def _step_results(events: list[dict[str, Any]], names: list[str]) -> list[Any]:
    from conveyor.plan import StepResult

    out: dict[str, StepResult] = {}
    for e in events:
        name = e.get("step")
        if name not in names:
            continue
        if e["event"] == "step_started":
            out[name] = StepResult(name, "interrupted", 0.0)
        elif e["event"] == "step_finished":
            out[name] = StepResult(name, "ok", e.get("duration", 0.0), e.get("notes") or [])
        elif e["event"] == "step_failed":
            out[name] = StepResult(name, "failed", e.get("duration", 0.0), [], [], e.get("error"))
        elif e["event"] == "output" and name in out:
            out[name].output.append(e["line"])
    return [out[n] for n in names if n in out]


def recover(rd: Path, reason: str) -> int:
    events = jr.read(rd / jr.JOURNAL)
    job = Job.from_json((rd / "job.json").read_text())
    journal = jr.Journal(rd / jr.JOURNAL)
    journal.write({"event": "recovery_started", "reason": reason, "at": time.time()})
    remote = Remote(job.config(rd / "job.json"), job.env,
                    transport_factory=lambda r: LocalTransport())
    dep = build(job, remote, None)
    st = dep.state
    saved = next((e for e in reversed(events) if "state" in e), None)
    if saved is not None:
        jr.restore(st, saved["state"])
    started, main_done = _main_events(events, dep.main.name)

    def emit(event: dict[str, Any]) -> None:
        journal.write(remote.redactor(event))

    def log(line: str) -> None:
        emit({"event": "output", "step": "recover", "line": line})

    wait_temporaries(remote, job.id, log)
    results = _step_results(events, started)
    undone: list[str] = []
    if main_done is None:
        steps = {s.name: s for s in dep.main.steps}
        for name in reversed(started):
            step = steps.get(name)
            if step is None or step.undo is None:
                continue
            io = StepIO(name, remote.transport, emit)
            emit({"event": "undo_started", "step": name})
            try:
                step.undo(st, io)
                status, err = "undone", None
                undone.append(name)
            except Exception as exc:  # noqa: BLE001 - every undo is tried, each one reported
                status, err = "undo-failed", str(exc)
            emit({"event": "undo_finished", "step": name, "status": status, "error": err})
            for r in results:
                if r.name == name:
                    r.status, r.error = status, err
    rec = st.record
    rec.finished_at = time.time()
    rec.steps = step_entries(results)
    if "migrate" in started and not st.migrations_applied:
        before = set(jr_applied(st.db_applied))
        after = applied_now(remote)
        if after is not None:
            st.migrations_applied = sorted(set(after) - before)
    rec.migrations_applied = list(st.migrations_applied)
    if main_done is not None and main_done.get("ok"):
        rec.result = "tests-failed" if st.tests_failed else "ok"
    elif main_done is not None:  # the plan failed and was undone; the runner died after it
        rec.result = "failed"
        rec.error = next((r.error for r in results if r.status == "failed"), None)
    else:
        last = started[-1] if started else "(before the first step)"
        rec.result = "interrupted"
        rec.error = remote.redactor(
            f"interrupted during step {last} ({reason}); recovered: "
            + (f"undid {', '.join(undone)}" if undone else "nothing to undo")
            + (f"; migrations that stay applied: {', '.join(rec.migrations_applied)}"
               if rec.migrations_applied else ""))
    details = getattr(rec, "details", None)
    if details is not None:
        details["recovery"] = {"reason": reason, "undone": undone, "at": time.time()}
    st.lock_id = st.lock_id or (job.id if started else None)
    if st.lock_id:
        execute(Plan("recovery: record", [record_step(remote)]), st, emit,
                transport=remote.transport, raise_on_failure=False)
    remote.transport.run(unlock_argv(remote, job.id), check=False, timeout=60)
    journal.write(remote.redactor({"event": "run_finished", "result": rec.result, "ok": False,
                                   "recovered": True, "state": jr.snapshot(st),
                                   "at": time.time()}))
    journal.close()
    return 0


def jr_applied(rows: list[str] | None) -> list[str]:
    from conveyor.steps.pending import applied_versions

    return applied_versions(rows) or []
