"""runner_start.sh and runner_finish.sh: the runner started, and its end read back, in one
round trip each (the lock is the runner container's name)."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

IMAGE = "127.0.0.1:5000/conveyor-runner:0.1.0-abc"
NAME = "notes-dev-runner"
JOB = '{"id": "d2", "secrets": {"app.secrets.TOKEN": "s3cret"}}'
LABELS = {"conveyor.deployment": "d1", "conveyor.who": "ann", "conveyor.what": "deploy dev x"}
RUN_OPTIONS = ["--detach", "--name", NAME, "--network", "host", IMAGE, "run"]
CONFLICT = f'docker: Error response from daemon: Conflict. The container name "/{NAME}" is already in use.'


@pytest.fixture
def bed(docker, tmp_path):
    """The fake docker, with a `docker run` that can print an error on stderr (on its first
    FAKE_RUN_STDERR_CALLS calls, all when unset), and paths."""
    real = docker.root / "bin" / "docker"
    wrapped = docker.root / "bin" / "docker-fake"
    real.rename(wrapped)
    count = docker.root / "run-stderr.count"
    real.write_text('#!/bin/sh\n'
                    'if [ "$1" = run ] && [ -n "${FAKE_RUN_STDERR-}" ]; then\n'
                    f'  n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}\n'
                    '  if [ "$n" -le "${FAKE_RUN_STDERR_CALLS:-99}" ]; then\n'
                    '    printf "%s\\n" "$FAKE_RUN_STDERR" >&2\n'
                    '  fi\n'
                    'fi\n'
                    f'exec {wrapped} "$@"\n')
    real.chmod(0o755)
    docker.env.pop("DOCKER_HOST", None)
    state = tmp_path / "state" / "notes" / "dev"
    docker.state = state
    docker.job = state / "jobs" / "d2.json"
    return docker


def start(bed, *, stdin: str = JOB + "\n", attach: str = ""):
    dirs = [str(bed.state), str(bed.state / "jobs"), str(bed.state / "runs"),
            str(bed.root / "backups")]
    return bed.run("runner_start", IMAGE, NAME, str(bed.job), attach, str(len(dirs)), *dirs,
                   *RUN_OPTIONS, str(bed.job), input=stdin)


def inspect_out(running: str, rid: str, labels: dict | None = None) -> str:
    return (f"{running} 2026-12-02T04:17:51.49Z {rid}\n"
            + json.dumps(labels if labels is not None else LABELS) + "\n")


def journal(bed, rid: str, *events: str) -> None:
    rd = bed.state / "runs" / rid
    rd.mkdir(parents=True)
    (rd / "journal.jsonl").write_text("".join(e + "\n" for e in events))


def calls(bed, first: str) -> list[list[str]]:
    return [c for c in bed.calls() if c[0] == first]


def name_taken(bed, inspect: str | None, *, runs: str = "125 0", conflicts: int = 1) -> None:
    """The runner's name is taken on the first `conflicts` `docker run`s; the container
    inspect then answers `inspect` (None: the container is gone meanwhile)."""
    bed.answer("RUN", rc=runs)
    bed.env["FAKE_RUN_STDERR"] = CONFLICT
    bed.env["FAKE_RUN_STDERR_CALLS"] = str(conflicts)
    if inspect is None:
        bed.answer("CONTAINER_INSPECT", rc=1)
    else:
        bed.answer("CONTAINER_INSPECT", out=inspect)


RUN = ["run", "--pull", "never", "--volume", "/var/run/docker.sock:/var/run/docker.sock",
       *RUN_OPTIONS]


def test_no_runner_yet_writes_the_job_0600_and_runs_it_with_the_socket_in_one_call(bed):
    """The common case (a finished run's container is removed at its end): one docker call,
    the `docker run` that takes the name; no inspect, no image check, no rm."""
    r = start(bed)

    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert bed.job.read_text() == JOB + "\n"
    assert stat.S_IMODE(bed.job.stat().st_mode) == 0o600
    for d in (bed.state, bed.state / "jobs", bed.state / "runs", bed.root / "backups"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert bed.calls() == [[*RUN, str(bed.job)]]


def test_with_attach_it_goes_on_as_the_runs_attach_process(bed, tmp_path):
    """One connection for the start and the stream: after the runner starts, the script
    prints ::started:: and becomes `docker exec -i RUNNER ... attach STATE RUN 0`, which gets
    the rest of stdin (the controller's control lines) and whose output follows."""
    bed.answer("EXEC_PYTHON", out='{"event": "run_started"}\n', stdin=tmp_path / "attach-in")
    control = '{"step": "test", "verdict": {"ok": true}}\n{"cancel": true}\n'

    r = start(bed, attach="attach", stdin=JOB + "\n" + control)

    assert (r.returncode, r.stdout) == (0, '::started::\n{"event": "run_started"}\n')
    assert bed.job.read_text() == JOB + "\n", "the job is the first line only"
    assert (tmp_path / "attach-in.1").read_text() == control
    assert calls(bed, "exec") == [["exec", "-i", NAME, "python", "-m", "conveyor.runner",
                                   "attach", str(bed.state), "d2", "0"]]
    assert calls(bed, "rm") == [], "an unfinished run's container is not removed"


def test_with_attach_a_finished_run_ends_with_the_record_once_the_runner_exited(bed, tmp_path):
    """The run's end in the same connection: the journal ends with run_finished, so the
    script waits for the runner's container to exit (the lock is free), prints the whole
    journal (the runner's exit cut the attach process short) and the record, and removes the
    exited container (not forced), so that the next start's `docker run` finds the name free."""
    started, finished = '{"event": "run_started"}', '{"event": "run_finished", "result": "ok"}'
    bed.answer("EXEC_PYTHON", out=started + "\n")
    journal(bed, "d2", started, finished)
    (bed.state / "deployments").mkdir()
    (bed.state / "deployments" / "d2.json").write_text('{"id": "d2", "result": "ok"}\n')

    r = start(bed, attach="attach")

    assert r.returncode == 0
    assert r.stdout == (f"::started::\n{started}\n::journal::\n{started}\n{finished}\n"
                        '::record::\n{"id": "d2", "result": "ok"}\n')
    for _ in range(200):  # the rm runs in the background
        if calls(bed, "rm"):
            break
        time.sleep(0.05)
    names = [c[0] for c in bed.calls()]
    assert names[names.index("wait"):] == ["wait", "rm"], "removed once it has exited"
    assert calls(bed, "wait") == [["wait", NAME]] and calls(bed, "rm") == [["rm", NAME]]


def test_with_attach_a_finished_run_without_a_record_exits_3(bed):
    finished = '{"event": "run_finished", "result": "failed"}'
    journal(bed, "d2", finished)

    r = start(bed, attach="attach")

    assert (r.returncode, r.stdout) == (3, f"::started::\n::journal::\n{finished}\n::record::\n")


def test_with_attach_an_unfinished_run_ends_with_the_attach_process(bed):
    """A detach, or the controller gone: the journal has no run_finished; nothing is waited
    for or removed, the attach process's exit code is the script's."""
    bed.answer("EXEC_PYTHON", rc=0)
    journal(bed, "d2", '{"event": "run_started"}', '{"event": "step_started"}')

    r = start(bed, attach="attach")

    assert (r.returncode, r.stdout) == (0, "::started::\n")
    assert calls(bed, "wait") == [] and calls(bed, "rm") == []


def test_with_attach_a_held_lock_answers_as_without(bed):
    name_taken(bed, inspect_out("true", "d1"))

    r = start(bed, attach="attach")

    assert r.returncode == 75 and "::started::" not in r.stdout
    assert calls(bed, "exec") == [] and not bed.job.exists()


def test_the_socket_is_the_one_docker_host_names(bed):
    bed.env["DOCKER_HOST"] = "unix:///run/vm/docker.sock"

    assert start(bed).returncode == 0
    assert calls(bed, "run")[0][1:5] == ["--pull", "never", "--volume",
                                         "/run/vm/docker.sock:/var/run/docker.sock"]


def test_a_docker_host_that_is_not_a_unix_socket_exits_4_before_anything(bed):
    bed.env["DOCKER_HOST"] = "tcp://10.0.0.1:2375"

    r = start(bed)

    assert (r.returncode, r.stdout) == (4, "tcp://10.0.0.1:2375\n")
    assert not bed.state.exists() and not bed.job.exists()
    assert bed.calls() == []


def test_a_missing_runner_image_exits_3_no_container_no_job_left(bed):
    """`--pull never`: the host pulls nothing itself; the controller brings the image."""
    bed.answer("RUN", rc=125)
    bed.env["FAKE_RUN_STDERR"] = f"docker: Error response from daemon: No such image: {IMAGE}"

    r = start(bed)

    assert r.returncode == 3
    assert not bed.job.exists()
    assert bed.calls() == [[*RUN, str(bed.job)]]


def test_a_running_runner_holds_the_lock_its_labels_are_printed(bed):
    name_taken(bed, inspect_out("true", "d1"))

    r = start(bed)

    assert r.returncode == 75
    assert json.loads(r.stdout) == LABELS
    assert not bed.job.exists()  # the secrets are not left behind
    assert len(calls(bed, "run")) == 1 and calls(bed, "rm") == []


def test_a_runner_being_restarted_holds_the_lock_too(bed):
    # the inspect's first word is `or .State.Running .State.Restarting`: "true" while Docker's
    # restart policy brings a dead runner back (it recovers on its own)
    name_taken(bed, inspect_out("true", "d1"))
    assert start(bed).returncode == 75
    fmt = calls(bed, "container")[0][3]
    assert fmt.startswith("{{or .State.Running .State.Restarting}} {{.State.FinishedAt}} ")


def test_a_stopped_runner_with_an_unfinished_journal_exits_76_nothing_removed(bed):
    name_taken(bed, inspect_out("false", "d1"))
    journal(bed, "d1", '{"event": "step_started", "step": "migrate"}')

    r = start(bed)

    assert (r.returncode, r.stdout) == (76, "d1 2026-12-02T04:17:51.49Z /var/run/docker.sock\n")
    assert not bed.job.exists()
    assert calls(bed, "rm") == [] and len(calls(bed, "run")) == 1


@pytest.mark.parametrize("events", [('{"event": "step_started"}', '{"event": "run_finished"}'),
                                    None], ids=["finished", "no-journal"])
def test_a_finished_runner_left_behind_is_removed_without_force_then_the_new_one_runs(bed,
                                                                                      events):
    """A finished run whose end was not seen through (an SSH cut, a detach) leaves its
    container: the name conflicts, it is removed, and the second `docker run` takes it."""
    name_taken(bed, inspect_out("false", "d1"))
    if events:
        journal(bed, "d1", *events)

    r = start(bed)

    assert r.returncode == 0
    assert calls(bed, "rm") == [["rm", NAME]]  # a runner started meanwhile is never removed
    assert calls(bed, "run") == [[*RUN, str(bed.job)]] * 2
    assert bed.job.read_text() == JOB + "\n"


def test_a_runner_without_a_deployment_label_is_removed(bed):
    name_taken(bed, inspect_out("false", "<no value>", {}))

    assert start(bed).returncode == 0
    assert calls(bed, "rm") == [["rm", NAME]]


def test_a_container_gone_meanwhile_the_name_is_tried_again(bed):
    """The previous run's container being removed (its background rm) as this one starts."""
    name_taken(bed, None)

    assert start(bed).returncode == 0
    assert len(calls(bed, "run")) == 2 and calls(bed, "rm") == []


def test_losing_the_race_for_the_name_exits_77_and_removes_the_job(bed):
    name_taken(bed, inspect_out("false", "d1"), runs="125", conflicts=99)
    journal(bed, "d1", '{"event": "run_finished"}')

    r = start(bed)

    assert r.returncode == 77
    assert not bed.job.exists()
    assert len(calls(bed, "run")) == 2, "bounded: the controller looks again"


def test_another_docker_run_failure_exits_1_with_its_error(bed):
    bed.answer("RUN", rc=125)
    bed.env["FAKE_RUN_STDERR"] = "docker: invalid reference format."

    r = start(bed)

    assert (r.returncode, r.stderr) == (1, "docker: invalid reference format.\n")
    assert not bed.job.exists()


# --------------------------------------------------------------------------- runner_finish


def record(tmp_path: Path) -> Path:
    path = tmp_path / "deployments" / "d2.json"
    path.parent.mkdir()
    path.write_text('{"id": "d2", "result": "ok"}\n')
    return path


def test_finish_prints_the_record_once_the_runner_is_gone(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out="false")

    r = docker.run("runner_finish", NAME, "300", str(record(tmp_path)), "", "0")

    assert r.returncode == 0
    assert r.stdout == '::record::\n{"id": "d2", "result": "ok"}\n'
    assert docker.calls() == [["container", "inspect", "--format", "{{.State.Running}}", NAME]]
    assert docker.sleeps() == []


def test_finish_prints_the_journal_after_the_lines_seen(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", rc=1)  # the runner is gone altogether
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"n": 1}\n{"n": 2}\n{"n": 3}\n')

    r = docker.run("runner_finish", NAME, "300", str(record(tmp_path)), str(journal), "1")

    assert r.returncode == 0
    assert r.stdout == ('::journal::\n{"n": 2}\n{"n": 3}\n'
                        '::record::\n{"id": "d2", "result": "ok"}\n')


def test_finish_waits_for_a_running_runner_a_bounded_time(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out="true")

    r = docker.run("runner_finish", NAME, "3", str(record(tmp_path)), "", "0")

    assert (r.returncode, r.stdout) == (4, "::running::\n")
    assert docker.sleeps() == ["0.02"] * 10 + ["0.1", "0.1", "0.1"]
    assert len(docker.calls()) == 14


def test_finish_without_a_record_exits_3(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", rc=1)

    r = docker.run("runner_finish", NAME, "300", str(tmp_path / "deployments" / "d2.json"), "",
                   "0")

    assert (r.returncode, r.stdout) == (3, "::record::\n")
