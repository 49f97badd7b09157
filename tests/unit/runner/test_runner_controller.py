"""The controller's start-up and end of a run on the host: one round trip (runner_start.sh,
whose stream ends with the record; runner_finish.sh when it does not), what it does with each
of their exit codes."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from tests.unit.plans.test_dev_plan import make_config

from conveyor.errors import ConveyorError, LockHeld
from conveyor.imageref import ImageRef
from conveyor.plans.dev import deploy_plans
from conveyor.runner import controller
from conveyor.runner import image as runner_image
from conveyor.runner.job import job_for
from conveyor.state.deploy import DeployOptions
from conveyor.targets.remote import Remote
from conveyor.transport import Result

IMAGE = ImageRef("127.0.0.1:5000/notes", "sha256:" + "ab" * 32, "rev1")
RUNNER = "127.0.0.1:5000/conveyor-runner:0.1.0-abc"
LABELS = {"conveyor.deployment": "d0", "conveyor.who": "ann", "conveyor.what": "deploy dev x",
          "conveyor.since": "2026-12-02T04:00:00Z"}


class FakeTransport:
    """Answers runner_start.sh / runner_finish.sh / other commands from queues, records all."""

    name = "root@10.0.0.5:22"

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, str, str]]] = {}
        self.calls: list[tuple[tuple[str, ...], Any]] = []

    def answer(self, key: str, *answers: tuple[int, str, str]) -> None:
        self.answers.setdefault(key, []).extend(answers)

    @staticmethod
    def key(argv: tuple[str, ...]) -> str:
        if argv[:2] == ("sh", "-c") and len(argv) > 3 and argv[3].startswith("conveyor-"):
            return argv[3]
        return argv[0] if argv[0] != "docker" else f"docker {argv[1]}"

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(str(a) for a in argv)
        self.calls.append((argv, input))
        queue = self.answers.get(self.key(argv)) or [(0, "", "")]
        rc, out, err = queue.pop(0) if len(queue) > 1 else queue[0]
        return Result(argv, rc, out, err, 0.0)

    def popen(self, argv):
        """runner_start.sh's connection: its answer from the queue; exit 0 means started (its
        stdout: ::started::, then what the attach process would stream)."""
        argv = tuple(str(a) for a in argv)
        queue = self.answers.get(self.key(argv)) or [(0, "", "")]
        rc, out, err = queue.pop(0) if len(queue) > 1 else queue[0]
        proc = FakeProc(rc, ("::started::\n" + out) if rc == 0 else out, err)
        self.calls.append((argv, proc.stdin))
        return proc

    def keys(self) -> list[str]:
        return [self.key(a) for a, _ in self.calls]


class FakeProc:
    """A finished `ssh ... runner_start.sh` process: its stdout, stderr and exit code."""

    def __init__(self, rc: int, out: str, err: str) -> None:
        self.stdin = io.BytesIO()
        self.stdin.close = lambda: None  # type: ignore[method-assign]  # kept readable
        self.stdout = io.BytesIO(out.encode())
        self.stderr = io.BytesIO(err.encode())
        self.rc = rc
        self.returncode: int | None = None

    def communicate(self, timeout=None):
        self.returncode = self.rc
        return self.stdout.read(), self.stderr.read()

    def wait(self, timeout=None):
        self.returncode = self.rc
        return self.rc

    def poll(self):
        return self.returncode

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTES_API_TOKEN", "t0ken-xyz")
    monkeypatch.setenv("NOTES_DEV_DB_PASSWORD", "s3cret-db")
    cfg = make_config(tmp_path, 8080)
    fake = FakeTransport()
    remote = Remote(cfg, "dev", transport_factory=lambda r: fake)  # type: ignore[arg-type,return-value]
    dep = deploy_plans(remote, IMAGE, DeployOptions(project_dir=tmp_path),
                       deployment_id="20260101T000000Z-ab12")
    job = job_for("dev", dep, DeployOptions(project_dir=tmp_path))
    monkeypatch.setattr(controller.time, "sleep", lambda s: None)
    return remote, fake, job


def take(remote, job, *, wait=False, log=None):
    lines: list[str] = []
    proc = controller.take(remote, job, RUNNER, wait=wait, wait_timeout=60.0,
                           log=log or lines.append)
    assert isinstance(proc, FakeProc) and proc.rc == 0, "the started runner's attach process"
    return lines


def test_one_round_trip_starts_the_runner_with_the_job_on_stdin(setup):
    remote, fake, job = setup

    take(remote, job)

    assert fake.keys() == ["conveyor-runner-start"]
    argv, sink = fake.calls[0]
    stdin = sink.getvalue().decode()
    assert stdin == job.to_json() + "\n"  # the secrets travel on stdin only, never in argv
    assert "\n" not in job.to_json(), "one line: the rest of stdin is the attach process's"
    assert "t0ken-xyz" not in " ".join(argv) and "t0ken-xyz" in stdin
    job_path = f"{remote.state_dir}/jobs/{job.id}.json"
    dirs = [remote.state_dir, f"{remote.state_dir}/jobs", f"{remote.state_dir}/runs",
            remote.env.backup.dir]
    assert argv[4:13] == (RUNNER, "notes-dev-runner", job_path, "attach", "4", *dirs)
    rest = argv[13:]
    assert rest[:3] == ("--detach", "--name", "notes-dev-runner")
    assert ("--restart", "on-failure:5") == rest[rest.index("--restart"):][:2]
    assert rest[-3:] == (RUNNER, "run", job_path)
    # the engine's socket is found and mounted by the script (DOCKER_HOST on the host)
    assert not [a for a in rest if a.endswith(":/var/run/docker.sock")]


def test_a_missing_runner_image_is_brought_then_the_start_is_tried_again(setup, monkeypatch):
    remote, fake, job = setup
    brought: list[str] = []
    monkeypatch.setattr(runner_image, "bring_to_host", lambda r, ref, log=None: brought.append(ref))
    fake.answer("conveyor-runner-start", (3, "", ""), (0, "", ""))

    take(remote, job)

    assert brought == [RUNNER]
    assert fake.keys() == ["conveyor-runner-start", "conveyor-runner-start"]


def test_a_running_runner_is_a_live_holder_named_in_the_error(setup):
    remote, fake, job = setup
    fake.answer("conveyor-runner-start", (75, json.dumps(LABELS) + "\n", ""))

    with pytest.raises(LockHeld) as exc:
        take(remote, job)

    assert exc.value.holder == {"id": "d0", "who": "ann", "what": "deploy dev x",
                                "since": "2026-12-02T04:00:00Z"}
    assert "notes-dev-runner is running" in str(exc.value)


def test_wait_waits_for_the_live_holder_then_starts(setup):
    remote, fake, job = setup
    fake.answer("conveyor-runner-start", (75, json.dumps(LABELS) + "\n", ""),
                (75, json.dumps(LABELS) + "\n", ""), (0, "", ""))

    lines = take(remote, job, wait=True)

    assert fake.keys() == ["conveyor-runner-start"] * 3
    assert len(lines) == 1 and lines[0].startswith("waiting for the lock held by ann")


def test_a_dead_holder_is_recovered_first_in_the_foreground_then_the_runner_starts(setup):
    remote, fake, job = setup
    fake.answer("conveyor-runner-start",
                (76, "d0 2026-12-02T04:17:51Z /run/vm/docker.sock\n", ""), (0, "", ""))

    lines = take(remote, job)

    assert fake.keys() == ["conveyor-runner-start", "docker rm", "docker run",
                           "conveyor-runner-start"]
    recover = fake.calls[2][0]
    assert recover[:4] == ("docker", "run", "--volume", "/run/vm/docker.sock:/var/run/docker.sock")
    assert "--rm" in recover and "--detach" not in recover and "--restart" not in recover
    assert recover[-3:] == ("recover", remote.state_dir, "d0")
    assert lines[0].startswith("deployment d0 was interrupted (its runner stopped at "
                               "2026-12-02T04:17:51Z)")
    assert lines[1].startswith("recovered deployment d0")


def test_a_failed_recovery_stops_the_deploy(setup):
    remote, fake, job = setup
    fake.answer("conveyor-runner-start", (76, "d0 2026-12-02T04:17:51Z /var/run/docker.sock\n", ""))
    fake.answer("docker run", (1, "", "boom"))

    with pytest.raises(ConveyorError, match="recovering the interrupted deployment d0 failed"):
        take(remote, job)


def test_a_lost_race_for_the_name_looks_again(setup):
    remote, fake, job = setup
    fake.answer("conveyor-runner-start", (77, "", ""), (75, json.dumps(LABELS) + "\n", ""))

    with pytest.raises(LockHeld):
        take(remote, job)
    assert fake.keys() == ["conveyor-runner-start"] * 2


@pytest.mark.parametrize(("rc", "out", "err", "message"), [
    (4, "tcp://10.0.0.1:2375\n", "", "DOCKER_HOST there is tcp://10.0.0.1:2375"),
    (1, "", "docker: invalid reference format.", "cannot start conveyor's runner"),
    (3, "", "", "cannot start conveyor's runner"),  # still no image after bringing it
    (255, "", "Connection closed by 10.0.0.5 port 22", "lost the connection to"),
])
def test_other_answers_are_errors(setup, monkeypatch, rc, out, err, message):
    remote, fake, job = setup
    monkeypatch.setattr(runner_image, "bring_to_host", lambda r, ref, log=None: None)
    fake.answer("conveyor-runner-start", (rc, out, err))

    with pytest.raises(ConveyorError, match=message):
        take(remote, job)


def test_finish_reads_the_record_and_the_unseen_journal_in_one_round_trip(setup):
    remote, fake, job = setup
    out = '::journal::\n{"event": "run_finished"}\n::record::\n{"id": "x", "result": "ok"}\n'
    fake.answer("conveyor-runner-finish", (0, out, ""))

    end = controller.finish(remote, job.id, tries=5, seen=7)

    assert (end.running, end.journal, end.record) == (
        False, ['{"event": "run_finished"}'], {"id": "x", "result": "ok"})
    argv = fake.calls[0][0]
    assert argv[4:] == ("notes-dev-runner", "5", remote.record_file(job.id),
                        f"{remote.state_dir}/runs/{job.id}/journal.jsonl", "7")


def test_finish_answers_still_running_and_no_record(setup):
    remote, fake, job = setup
    fake.answer("conveyor-runner-finish", (4, "::running::\n", ""), (3, "::record::\n", ""))

    running = controller.finish(remote, job.id)
    missing = controller.finish(remote, job.id)

    assert (running.running, running.record) == (True, None)
    assert (missing.running, missing.record, missing.journal) == (False, None, [])
    assert fake.calls[0][0][7:] == ("", "0")  # no journal asked for



LINES = ['{"event": "run_started"}', '{"event": "step_started", "step": "lock"}',
         '{"event": "step_finished", "step": "lock", "duration": 0.01}',
         '{"event": "run_finished", "result": "ok", "ok": true, "state": {}}']
JOURNAL = "".join(line + "\n" for line in LINES)
RECORD = '::record::\n{"id": "x", "result": "ok"}\n'


@pytest.mark.parametrize("streamed", [len(LINES), 2, 0])
def test_the_runs_end_comes_in_runner_starts_connection_without_a_round_trip(setup, streamed):
    """After the attach process (usually cut short by the runner's exit: `streamed` of the
    journal's lines came), runner_start.sh waits for the runner to exit and prints the whole
    journal and the record: the controller takes the lines it has not seen and the record
    from the same stream, and asks nothing more."""
    remote, fake, job = setup
    proc = FakeProc(0, "".join(line + "\n" for line in LINES[:streamed])
                    + "::journal::\n" + JOURNAL + RECORD, "")
    events: list[dict] = []

    finished, failure, end = controller.attach(remote, job.id, events.append, first=proc)

    assert finished is not None and finished["result"] == "ok" and failure is None
    assert end is not None and (end.running, end.record) == (False, {"id": "x", "result": "ok"})
    assert [e["event"] for e in events] == ["step_started", "step_finished"], "each event once"
    assert fake.calls == [], "no round trip: no runner_finish.sh"


@pytest.mark.parametrize(("rc", "tail"), [
    (0, ""),  # the stream ended after the last event (an older script, a cut connection)
    (255, "::journal::\n" + JOURNAL + "::record::\n"),  # the connection was lost meanwhile
])
def test_without_the_record_in_the_stream_the_end_is_asked_for(setup, rc, tail):
    remote, _, job = setup
    proc = FakeProc(rc, JOURNAL + tail, "")

    finished, _, end = controller.attach(remote, job.id, lambda e: None, first=proc)

    assert finished is not None and end is None  # run_on_host then calls finish()


def test_a_finished_run_without_a_record_in_the_stream_has_none(setup):
    remote, _, job = setup
    proc = FakeProc(3, JOURNAL + "::journal::\n" + JOURNAL + "::record::\n", "")

    _, _, end = controller.attach(remote, job.id, lambda e: None, first=proc)

    assert end is not None and (end.running, end.record) == (False, None)
