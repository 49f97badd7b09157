"""Faults during `conveyor deploy dev` (see conftest.py for what every test asserts): SIGKILL and
SIGTERM of the controller at each stage, the SSH connection cut during the migration, the
env's PostgreSQL restarted during the migration."""

from __future__ import annotations

import secrets
import signal

import pytest

from tests.faults.conftest import SIGNALS, SLOW_START_SECONDS, Bed, Run, poll, record

ENV = "dev"

# stage -> (new version with a slow migration?, extra env of the deploy, step, event)
STAGES = {
    "after-lock": (False, {}, "lock", "step_finished"),
    "pull": (False, {}, "pull", "step_started"),
    "migrate": (True, {}, "migrate", "step_started"),
    "start": (False, {}, "replace", "step_started"),
    "health": (False, {"FAULTS_SLOW_START": str(SLOW_START_SECONDS)}, "health", "step_started"),
    "tests": (False, {}, "test", "step_started"),
}


@pytest.fixture(scope="module")
def bed(testbed, tmp_path_factory):
    b = Bed.make(tmp_path_factory.mktemp("faults-dev"), testbed,
                 app=f"notes-fd-{secrets.token_hex(2)}", envs=(ENV,))
    try:
        b.build_and_push()
        b.ok("setup", ENV)
        b.ok("deploy", ENV)
        b.write_note(ENV)
        yield b
    finally:
        b.cleanup()


def start_and_reach(bed: Bed, stage: str, tmp_path, extra: dict | None = None):
    """A new version, the deploy started, waited for until it is inside `stage`."""
    migration, env, step, kind = STAGES[stage]
    old = bed.serving(ENV)
    assert old
    bed.write_note(ENV)
    new = bed.new_version(migration=migration)
    before = bed.history_ids(ENV)
    env = {**env, **(extra or {})}
    mark = tmp_path / "slow-tests-running"
    if stage == "tests":
        env["FAULTS_SLOW_TESTS_MARK"] = str(mark)
    run = Run(bed, "deploy", ENV, extra_env=env)
    run.wait_step(step, kind)
    if stage == "migrate":
        poll(lambda: bed.pg_sleeping(ENV), 60, "the slow migration running")
    if stage == "tests":
        poll(mark.exists, 120, "the slow tests running")
    return run, old, new, before


@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("stage", list(STAGES))
def test_controller_signal(bed, stage, sig, tmp_path):
    run, old, new, before = start_and_reach(bed, stage, tmp_path)
    run.kill(SIGNALS[sig])
    rc = run.wait(300) if sig == "SIGTERM" else None
    # SIGKILL: the runner goes on, but the tests' verdict never comes: the previous version is
    # put back. SIGTERM: a cancel, undone to the previous version.
    obs = bed.check_after_fault(ENV, before, old, new, expect="old",
                                results=("failed", "interrupted"),
                                label=f"dev {sig} {stage}")
    if sig == "SIGTERM":
        assert rc != 0, run.tail()
    obs.update(env=ENV, fault=sig, stage=stage, rc=rc)
    record(obs)


def test_ssh_cut_during_migrate(bed, tmp_path):
    """The controller's ssh processes (its children and its ControlMaster) are killed during the
    migration: the runner goes on, the controller attaches again and sees it end."""
    run, old, new, before = start_and_reach(bed, "migrate", tmp_path)
    pids = run.ssh_processes()
    assert pids, "no ssh process of this conveyor found"
    for pid in pids:
        with __import__("contextlib").suppress(ProcessLookupError):
            __import__("os").kill(pid, signal.SIGKILL)
    rc = run.wait(300)
    print(run.tail())  # shown when the test fails
    obs = bed.check_after_fault(ENV, before, old, new, expect="new", results=("ok",),
                                label="dev ssh-cut migrate")
    assert rc == 0, run.tail()
    obs.update(env=ENV, fault="ssh cut", stage="migrate", rc=rc, killed=len(pids))
    record(obs)


def test_postgres_restarted_during_migrate(bed, tmp_path):
    run, old, new, before = start_and_reach(bed, "migrate", tmp_path)
    bed.vms[ENV].docker("restart", bed.container(ENV, "db"))
    rc = run.wait(300)
    obs = bed.check_after_fault(ENV, before, old, new, expect="old", results=("failed",),
                                label="dev postgres-restart migrate")
    assert rc != 0, run.tail()
    obs.update(env=ENV, fault="postgres restart", stage="migrate", rc=rc)
    record(obs)
