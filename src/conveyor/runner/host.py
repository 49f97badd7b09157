"""The runner process, inside the runner container on the host.

    python -m conveyor.runner run JOBFILE     run the job's plan (or, when its journal shows an
                                              unfinished run, recover it)
    python -m conveyor.runner attach RUN_ID   stream the run's journal; read the controller's
                                              verdicts and cancel from stdin

The run directory (`<state_dir>/runs/<id>/`) holds the journal, the job without its secrets,
and the files the attach process and the runner talk through: `heartbeat` (touched while a
controller is attached), `verdict-<step>.json`, `cancel`, `controller-gone`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, Interrupted
from conveyor.plan import StepIO
from conveyor.plans.deployment import run_deployment
from conveyor.runner import journal as jr
from conveyor.runner.job import Job, build
from conveyor.targets.remote import Remote
from conveyor.transport import LocalTransport

HEARTBEAT_EVERY = 2.0
CONTROLLER_GONE_AFTER = 20.0  # no heartbeat for this long: the controller is gone
REATTACH_GRACE = 10.0  # a connection that ended (SSH cut) may attach again within this


class FileVerdicts:
    """Verdicts from the controller, through the run directory (see `attach`)."""

    def __init__(self, rd: Path, emit: Any) -> None:
        self.rd = rd
        self.emit = emit

    def controller_gone(self) -> str | None:
        if (self.rd / "cancel").exists():
            return "the controller cancelled the deployment"
        try:
            beat = (self.rd / "heartbeat").stat().st_mtime
        except OSError:
            beat = self.rd.stat().st_mtime
        try:  # a connection that ended; a controller that attached again since supersedes it
            ended = (self.rd / "controller-gone").stat().st_mtime
        except OSError:
            ended = None
        if ended is not None and beat <= ended and time.time() - ended > REATTACH_GRACE:
            return "the controller's connection ended"
        age = time.time() - beat
        if age > CONTROLLER_GONE_AFTER:
            return f"no controller has been attached for {age:.0f} s"
        return None

    def ask(self, step: str, request: dict[str, Any], io: StepIO) -> dict[str, Any]:
        answer = self.rd / f"verdict-{step}.json"
        self.emit({"event": "verdict_wanted", "step": step, "request": request})
        deadline = time.monotonic() + (request.get("timeout") or 3600) + 60
        while time.monotonic() < deadline:
            if answer.exists():
                reply = json.loads(answer.read_text())
                answer.unlink()
                io.output.extend(reply.get("output") or [])  # streamed by the controller
                return dict(reply)
            gone = self.controller_gone()
            if gone:  # not a verdict: the step fails, the plan undoes to the previous version
                cls = Interrupted if (self.rd / "cancel").exists() else ConveyorError
                raise cls(f"{gone} before the {step} verdict: the deployment is not validated",
                          hint="the previous version is put back; deploy again to retry")
            time.sleep(0.2)
        raise ConveyorError(f"no {step} verdict from the controller in time: the deployment is "
                            "not validated")


def _check_cancel(rd: Path) -> None:
    if (rd / "cancel").exists():
        raise Interrupted("cancelled by the controller (SIGINT/SIGTERM there)",
                          hint="what was done is undone; `conveyor history` shows the record")


def run(job_path: str) -> int:
    path = Path(job_path)
    state_dir = str(path.parent.parent)
    run_id = path.stem
    rd = Path(jr.run_dir(state_dir, run_id))
    events = jr.read(rd / jr.JOURNAL)
    if not path.exists():  # restarted after dying (the job file is read once): recover
        if events and jr.finished(events) is None:
            from conveyor.runner.recover import recover

            return recover(rd, reason="the runner was restarted after it died")
        return 0
    job = Job.from_json(path.read_text())
    path.unlink()  # the secrets: read once, kept in memory only
    rd.mkdir(parents=True, exist_ok=True)
    (rd / "job.json").write_text(job.redacted().to_json())
    journal = jr.Journal(rd / jr.JOURNAL)
    cfg = job.config(path)
    remote = Remote(cfg, job.env, transport_factory=lambda r: LocalTransport())
    for value in job.secrets.values():
        remote.redactor.add(value)
    dep = None

    def emit(event: dict[str, Any]) -> None:
        if dep is not None and event.get("event") == "step_started":
            event = {**event, "state": jr.snapshot(dep.state)}
        journal.write(remote.redactor(event))

    def on_term(signum: int, frame: Any) -> None:  # Docker stopping us: recover on restart
        journal.write({"event": "runner_signal", "signal": signum, "at": time.time()})
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    dep = build(job, remote, FileVerdicts(rd, emit))
    journal.write({"event": "run_started", "id": job.id, "kind": job.kind, "env": job.env,
                   "at": time.time(), "pid": os.getpid()})
    result = run_deployment(dep, emit, check=lambda: _check_cancel(rd))
    journal.write(remote.redactor({
        "event": "run_finished", "result": dep.record.result, "ok": result.error is None,
        "state": jr.snapshot(dep.state), "at": time.time()}))
    journal.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["run"] and len(args) == 2:
            return run(args[1])
        if args[:1] == ["recover"] and len(args) == 3:
            from conveyor.runner.recover import recover

            return recover(Path(jr.run_dir(args[1], args[2])),
                           reason="the run's runner was gone")
    except ConveyorError as exc:
        print(f"conveyor runner: {exc}", file=sys.stderr)
        return 1
    print("usage: python -m conveyor.runner run JOBFILE | attach STATE_DIR RUN_ID [OFFSET] | "
          "recover STATE_DIR RUN_ID", file=sys.stderr)
    return 2
