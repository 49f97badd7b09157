"""The controller's side of a run on the host: make sure the runner image is there, hand the
job over, start the runner (its container's name is the environment's lock), stream its
events, answer its verdict requests (run the tests / validate_command here), pass Ctrl-C or
SIGTERM on as a cancel (unless --detach), and read the result back from the host."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Self

from conveyor import errors, host
from conveyor.commands import docker
from conveyor.errors import ConveyorError, HostUnreachable, LockHeld
from conveyor.plan import EventSink, PlanResult, StepResult
from conveyor.plans.deployment import Deployment
from conveyor.runner import image as runner_image
from conveyor.runner import journal as jr
from conveyor.runner.job import Job
from conveyor.steps.lock import describe_holder
from conveyor.steps.record import read_record
from conveyor.steps.tests import answer
from conveyor.targets.remote import Remote, tail
from conveyor.transport import Result

REATTACH_FOR = 120.0  # a lost stream (SSH cut, runner restarting) is re-attached this long
FINISH_TRIES = 300  # after its last event, the runner's exit is waited for this many 0.1 s
FALLBACK_TRIES = 5  # the same when the stream ended before the last event
START_TIMEOUT = 300.0  # runner_start.sh's answer (started, or why not) within this
END_WITHIN = 30.0  # after the run's last event, runner_start.sh's record within this


def runner_name(remote: Remote) -> str:
    return f"{remote.app.name}-{remote.name}-runner"


def runner_state(remote: Remote) -> dict[str, Any] | None:
    r = remote.transport.run(docker.inspect(runner_name(remote), "{{json .}}"), check=False,
                             timeout=60)
    if not r.ok:
        return None
    data = json.loads(r.stdout)
    return {"running": data["State"]["Running"], "finished_at": data["State"].get("FinishedAt"),
            "labels": data["Config"].get("Labels") or {}}


def holder(labels: dict[str, str]) -> dict[str, Any]:
    return {"id": labels.get("conveyor.deployment"), "who": labels.get("conveyor.who"),
            "what": labels.get("conveyor.what"), "since": labels.get("conveyor.since")}


def _run_options(remote: Remote, image: str, job: Job, command: list[str],
                 detach: bool = True) -> list[str]:
    """`docker run`'s options, image and command for a runner, all but the engine's socket."""
    labels = remote.labels("runner", **{
        "conveyor.deployment": job.id, "conveyor.who": job.actor,
        "conveyor.what": job.extra.get("what") or f"{job.kind} {remote.name}",
        "conveyor.since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    mounts = [f"{remote.state_dir}:{remote.state_dir}"]
    backup_dir = remote.env.backup.dir.rstrip("/")
    if backup_dir and not backup_dir.startswith(remote.state_dir):
        mounts.append(f"{backup_dir}:{backup_dir}")
    argv = ["--detach" if detach else "--rm", "--name", runner_name(remote),
            "--network", "host", "--env", "DOCKER_HOST=unix:///var/run/docker.sock",
            "--env", f"CONVEYOR_ACTOR={job.actor}", "--env", f"CONVEYOR_RUNNER_IMAGE={image}"]
    if detach:
        argv += ["--restart", "on-failure:5"]
    for m in mounts:
        argv += ["--volume", m]
    for k, v in labels.items():
        argv += ["--label", f"{k}={v}"]
    return [*argv, image, *command]


def run_argv(remote: Remote, image: str, socket: str, job: Job, command: list[str],
             detach: bool = True) -> tuple[str, ...]:
    """The whole `docker run` of a runner, the engine's socket (a host path) mounted."""
    return ("docker", "run", "--volume", f"{socket}:/var/run/docker.sock",
            *_run_options(remote, image, job, command, detach))


def _dirs(remote: Remote) -> list[str]:
    dirs = [remote.state_dir, jr.jobs_dir(remote.state_dir), f"{remote.state_dir}/runs"]
    if not remote.env.backup.dir.startswith(remote.state_dir):
        dirs.append(remote.env.backup.dir)
    return dirs


def start_argv(remote: Remote, image: str, job: Job) -> tuple[str, ...]:
    """runner_start.sh: socket, directories, job, `docker run` (the lock's state read only
    when the name is taken), then the attach process in the same connection."""
    job_path = f"{jr.jobs_dir(remote.state_dir)}/{job.id}.json"
    dirs = _dirs(remote)
    return host.argv("runner_start", image, runner_name(remote), job_path, "attach",
                     str(len(dirs)), *dirs, *_run_options(remote, image, job, ["run", job_path]))


STARTED = b"::started::\n"  # runner_start.sh: the runner runs; its journal's lines follow
JOURNAL_FOLLOWS = b"::journal::\n"  # runner_start.sh, after the attach: the run's end follows


def start(remote: Remote, image: str, job: Job
          ) -> tuple[subprocess.Popen[bytes] | None, Result | None]:
    """runner_start.sh with the job on its first line of stdin: (the attach process, None)
    when the runner started, its journal streaming on the process's stdout; else (None, the
    script's answer)."""
    argv = start_argv(remote, image, job)
    proc = remote.transport.popen(argv)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(job.to_json().encode() + b"\n")
        proc.stdin.flush()
    except OSError:  # the script ended without reading it: its answer says why
        pass
    first: list[bytes] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()),  # type: ignore[union-attr]
                              name="conveyor-runner-start", daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    if reader.is_alive():
        proc.kill()
        raise ConveyorError(f"no answer from {remote.host} within {START_TIMEOUT:g} s while "
                            "starting conveyor's runner",
                            hint="check the host (its Docker engine) and deploy again")
    if first == [STARTED]:
        return proc, None
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    text = (b"".join(first) + out).decode(errors="replace")
    stderr = err.decode(errors="replace")
    if proc.returncode == 255 and not text:
        raise HostUnreachable(f"lost the connection to {remote.host} while starting "
                              f"conveyor's runner: {tail(stderr)}",
                              hint="check the host and the network; deploy again")
    return None, Result(argv, proc.returncode, text, stderr, 0.0, host=remote.host)


# runner_start.sh's exit codes
_NO_IMAGE, _NOT_UNIX, _HELD, _DEAD, _RACE = 3, 4, 75, 76, 77


def take(remote: Remote, job: Job, image: str, *, wait: bool, wait_timeout: float,
         log: Callable[[str], None]) -> subprocess.Popen[bytes]:
    """Start the runner, in one round trip (runner_start.sh): its name is the lock. A live
    runner holds it; a dead one's run is recovered first, then its container removed. The
    runner image is brought to the host when it is not there yet. Returns the run's attach
    process (the same connection)."""
    deadline = time.monotonic() + wait_timeout
    announced = False
    brought = False
    while True:
        proc, r = start(remote, image, job)
        if proc is not None:
            return proc
        assert r is not None
        if r.returncode == _NO_IMAGE and not brought:
            runner_image.bring_to_host(remote, image, log)
            brought = True
            continue
        if r.returncode == _NOT_UNIX:
            raise ConveyorError(f"the runner drives {remote.host}'s Docker engine through its "
                                f"unix socket; DOCKER_HOST there is {r.stdout.strip()}",
                                hint="let the host's docker talk to a local unix socket")
        if r.returncode == _HELD:
            try:
                labels = json.loads(r.stdout.strip().splitlines()[-1]) or {}
            except (ValueError, IndexError):
                labels = {}
            h = holder(labels)
            if not wait or time.monotonic() >= deadline:
                raise LockHeld(f"{remote.name} is locked by {describe_holder(h)}: its runner "
                               f"{runner_name(remote)} is running on {remote.host}", holder=h,
                               hint="wait for it with --wait; it ends on its own")
            if not announced:
                log(f"waiting for the lock held by {describe_holder(h)} (its runner is running "
                    f"on {remote.host})")
                announced = True
            time.sleep(2.0)
            continue
        if r.returncode == _DEAD:
            rid, stopped_at, socket = r.stdout.strip().splitlines()[-1].split(" ", 2)
            recover_dead(remote, job, image, socket, rid, stopped_at, log)
            continue
        if r.returncode == _RACE:  # another runner took the name meanwhile: look again
            continue
        raise ConveyorError(f"cannot start conveyor's runner on {remote.host}: "
                            f"{tail(r.stderr or r.stdout)}")


def recover_dead(remote: Remote, job: Job, image: str, socket: str, rid: str, stopped_at: str,
                 log: Callable[[str], None]) -> None:
    """The run of a runner that stopped before its end: recovered (in a runner of its own, in
    the foreground) before anything else runs for the environment."""
    log(f"deployment {rid} was interrupted (its runner stopped at {stopped_at}): recovering "
        "it first")
    remote.transport.run(docker.rm(runner_name(remote), force=True), check=False, timeout=120)
    r = remote.transport.run(run_argv(remote, image, socket, job,
                                      ["recover", remote.state_dir, rid], detach=False),
                             check=False, timeout=1800)
    if not r.ok:
        raise ConveyorError(f"recovering the interrupted deployment {rid} failed: "
                            f"{tail(r.stderr + r.stdout)}")
    log(f"recovered deployment {rid} (`conveyor history {remote.name} {rid}`)")


class Finished:
    """runner_finish.sh's answer (or runner_start.sh's, after a finished run's journal):
    whether the runner still runs, the journal's lines the controller had not seen (when asked
    for), the record (None: none)."""

    def __init__(self, stdout: str, returncode: int) -> None:
        self.running = returncode == 4
        self.journal: list[str] = []
        self.record: dict[str, Any] | None = None
        section = None
        body: list[str] = []
        for line in stdout.splitlines():
            if line in ("::journal::", "::record::", "::running::"):
                section = line
                continue
            if section == "::journal::":
                self.journal.append(line)
            elif section == "::record::":
                body.append(line)
        if returncode == 0:
            try:
                rec = json.loads("\n".join(body))
            except ValueError:
                rec = None
            self.record = rec if isinstance(rec, dict) else None


def finish(remote: Remote, run_id: str, *, tries: int = FINISH_TRIES,
           seen: int | None = None) -> Finished:
    """In one round trip (runner_finish.sh): wait (at most `tries` x 0.1 s) for the runner to
    exit, so that the lock is free when this command returns (a deploy right after would be
    refused as locked); read the journal after its first `seen` lines (unless None) and the
    deployment's record."""
    journal = "" if seen is None else f"{jr.run_dir(remote.state_dir, run_id)}/{jr.JOURNAL}"
    r = remote.transport.run(host.argv("runner_finish", runner_name(remote), str(tries),
                                       remote.record_file(run_id), journal, str(seen or 0)),
                             check=False, timeout=120)
    return Finished(r.stdout, r.returncode)


def _end_in_stream(proc: subprocess.Popen[bytes], head: bytes = b"") -> Finished | None:
    """What runner_start.sh prints after the attach process of a finished run, once the runner
    has exited (the lock is free): "::journal::" and the whole journal, "::record::" and the
    record (`head`: what was read of it already). None when that does not come within
    END_WITHIN (or the connection ended first): `finish` then asks in a round trip."""
    rest: list[bytes] = [head]
    reader = threading.Thread(target=lambda: rest.append(proc.stdout.read()),  # type: ignore[union-attr]
                              name="conveyor-runner-end", daemon=True)
    reader.start()
    reader.join(END_WITHIN)
    if reader.is_alive() or len(rest) < 2:
        return None
    try:
        code = proc.wait(timeout=END_WITHIN)
    except subprocess.TimeoutExpired:
        return None
    text = b"".join(rest).decode(errors="replace")
    if "::record::" not in text.splitlines() or code not in (0, 3):
        return None
    return Finished(text, code)


class _Signals:
    """SIGINT/SIGTERM while attached: the first asks the runner to cancel (unless detach), the
    second detaches."""

    def __init__(self, detach: bool) -> None:
        self.detach = detach
        self.count = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._on)
        return self

    notify: Callable[[int], None] | None = None  # told at once (the main loop may be busy)

    def _on(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.notify is not None:
            self.notify(self.count)

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _error(event: dict[str, Any]) -> ConveyorError:
    cls = getattr(errors, str(event.get("error_class")), None)
    message, hint = str(event.get("error")), event.get("hint")
    try:
        if isinstance(cls, type) and issubclass(cls, ConveyorError) and cls not in (
                errors.ConfigError, errors.CommandFailed):
            return cls(message, hint=hint)
    except TypeError:
        pass
    exc = ConveyorError(message, hint=hint)
    exc.exit_code = int(event.get("exit_code") or 1)
    return exc


def attach(remote: Remote, run_id: str, emit: EventSink, *, detach: bool = False,
           first: subprocess.Popen[bytes] | None = None
           ) -> tuple[dict[str, Any] | None, ConveyorError | None, Finished | None]:
    """Stream the run's events until it finishes: (the run_finished event, the error of the
    step that failed, the runner's end when it was read already). (None, None, None) when the
    controller detached. `first`: the attach process `take` started (else one is started)."""
    seen = 0
    failure: ConveyorError | None = None
    finished: dict[str, Any] | None = None
    give_up = time.monotonic() + REATTACH_FOR

    def handle(raw: bytes | str, send: Callable[[dict[str, Any]], None]) -> bool:
        """One journal line; True when the run finished."""
        nonlocal seen, failure, finished
        seen += 1
        try:
            event = json.loads(raw)
        except ValueError:
            return False
        kind = event.get("event")
        if kind == "run_finished":
            finished = event
            return True
        if kind == "verdict_wanted":
            step = event["step"]

            def log(line: str, step: str = step) -> None:
                emit({"event": "output", "step": step, "line": line})

            send({"step": step, "verdict": answer(event["request"], log)})
            return False
        if kind == "step_failed":
            failure = _error(event)
        if kind not in ("run_started", "runner_signal"):
            event.pop("state", None)
            emit(event)
        return False

    with _Signals(detach) as sig:
        while True:
            started = first is not None  # runner_start.sh's: the record follows the journal
            proc = first or remote.transport.popen((
                "docker", "exec", "-i", runner_name(remote), "python", "-m", "conveyor.runner",
                "attach", remote.state_dir, run_id, str(seen)))
            first = None
            assert proc.stdin is not None and proc.stdout is not None
            cancelled = 0
            writing = {"now": False, "cancel_pending": False}

            def send(msg: dict[str, Any], p: Any = proc, w: dict = writing) -> None:
                w["now"] = True
                try:
                    p.stdin.write((json.dumps(msg) + "\n").encode())
                    p.stdin.flush()
                except OSError:
                    pass
                finally:
                    w["now"] = False
                if w["cancel_pending"]:
                    w["cancel_pending"] = False
                    send({"cancel": True})

            def on_signal(count: int, w: dict = writing, s: Any = send) -> None:
                # the cancel goes out at once: the main loop may be running the tests for a
                # verdict, or waiting for the next event of a long step
                if count == 1 and not detach:
                    if w["now"]:
                        w["cancel_pending"] = True
                    else:
                        s({"cancel": True})

            sig.notify = on_signal
            for raw in proc.stdout:
                give_up = time.monotonic() + REATTACH_FOR  # from the last line received
                if sig.count > cancelled:
                    cancelled = sig.count
                    if sig.count == 1 and not detach:
                        emit({"event": "message", "text": "interrupted: asking the runner on "
                              f"{remote.host} to undo (again to detach)"})
                        send({"cancel": True})
                    else:
                        send({"detach": True})
                        proc.kill()
                        return None, None, None
                if started and raw == JOURNAL_FOLLOWS:  # the attach ended with the runner
                    end = _end_in_stream(proc, raw)
                    for line in end.journal[seen:] if end is not None else []:
                        if handle(line, lambda msg: None):
                            proc.kill()
                            return finished, failure, end
                    break
                if handle(raw, send):
                    end = _end_in_stream(proc) if started else None
                    proc.kill()
                    return finished, failure, end
            proc.wait()
            try:
                # the stream ended: the runner usually stopped right after its last event, and
                # the exec with it; then the rest of the journal (and the record) is on the
                # host's disk. A runner still running (a cut stream) is attached again.
                end = finish(remote, run_id, tries=FALLBACK_TRIES, seen=seen)
                if not end.running:
                    for line in end.journal:
                        if handle(line, lambda msg: None):
                            return finished, failure, end
            except HostUnreachable:  # the connection was cut: attach again (until give_up)
                pass
            if time.monotonic() > give_up:
                raise ConveyorError(f"lost the runner's stream on {remote.host} (deployment "
                                    f"{run_id}); it goes on there",
                                    hint=f"`conveyor status {remote.name}` and `conveyor history "
                                    f"{remote.name} {run_id}` show how it ends")
            time.sleep(1.0)


def _apply_record(dep: Deployment, rec: dict[str, Any]) -> None:
    r = dep.record
    for key in ("result", "error", "migrations_applied", "steps", "tests", "previous_image",
                "previous_revision", "revision", "image"):
        if key in rec:
            setattr(r, key, rec[key])
    if rec.get("details") is not None and hasattr(r, "details"):
        r.details = rec["details"]
    r.finished_at = time.time() if rec.get("finished_at") else None


def run_on_host(dep: Deployment, job: Job, emit: EventSink, *, wait: bool = False,
                wait_timeout: float = 900.0, detach: bool = False) -> PlanResult:
    """Run the planned deployment on its host; the same result `run_deployment` returns."""
    remote = dep.remote
    t0 = time.monotonic()
    connecting = _connect_meanwhile(remote)
    ref = runner_image.image_ref(remote.cfg)  # hashes conveyor's files: while ssh connects
    connecting()

    def log(line: str) -> None:
        emit({"event": "message", "text": line})

    proc = take(remote, job, ref, wait=wait, wait_timeout=wait_timeout, log=log)
    finished, failure, end = attach(remote, job.id, emit, detach=detach, first=proc)
    if finished is None:
        log(f"detached: deployment {job.id} goes on on {remote.host} (`conveyor status "
            f"{remote.name}`)")
        return PlanResult(dep.main.name, True, [], time.monotonic() - t0, None)
    jr.restore(dep.state, finished.get("state") or {})
    if end is None:
        end = finish(remote, job.id)
    rec = end.record
    if rec is None and end.running:  # still running after the wait: read the record anyway
        try:
            rec = read_record(remote, job.id)
        except ConveyorError:
            rec = None
    if rec is not None:
        _apply_record(dep, rec)
    else:  # no record: the lock was never taken
        dep.record.result = "failed"
        dep.record.error = str(failure) if failure else finished.get("result")
    steps = [StepResult(s["name"], s["status"], s.get("duration") or 0.0, s.get("notes") or [],
                        s.get("output") or [], s.get("error")) for s in dep.record.steps]
    if failure is None and dep.record.result in ("failed", "interrupted"):
        failure = ConveyorError(dep.record.error or f"deployment {job.id} {dep.record.result}")
    return PlanResult(dep.main.name, failure is None, steps, time.monotonic() - t0, failure)


def _connect_meanwhile(remote: Remote) -> Callable[[], None]:
    """Open the connection to the host in a thread (the SSH handshake: the master); the
    returned function waits for it and raises its error."""
    transport = remote.transport
    errors_: list[BaseException] = []

    def connect() -> None:
        try:
            transport.connect()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors_.append(exc)

    thread = threading.Thread(target=connect, name="conveyor-connect", daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if errors_:
            raise errors_[0]

    return wait
