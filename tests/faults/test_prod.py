"""Faults during `conveyor deploy prod` (see conftest.py for what every test asserts): SIGKILL and
SIGTERM of the controller at each stage, the SSH connection cut during health, the registry
down during the deploy of an image prod has not pulled yet."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal

import pytest

from tests.faults.conftest import (
    SIGNALS,
    SLOW_START_SECONDS,
    Bed,
    Run,
    bed_script,
    poll,
    record,
)

ENV = "prod"

# stage -> (new version with a slow migration?, extra env of the deploy, step, event)
STAGES = {
    "after-lock": (False, {}, "lock", "step_finished"),
    "pull": (False, {}, "pull", "step_started"),
    "backup": (False, {}, "backup", "step_started"),
    "stop": (False, {}, "stop", "step_started"),
    "migrate": (True, {}, "migrate", "step_started"),
    "start": (False, {}, "start", "step_started"),
    "health": (False, {"FAULTS_SLOW_START": str(SLOW_START_SECONDS)}, "health", "step_started"),
    "validate": (False, {}, "validate", "step_started"),
}


@pytest.fixture(scope="module")
def bed(testbed, tmp_path_factory):
    b = Bed.make(tmp_path_factory.mktemp("faults-prod"), testbed,
                 app=f"notes-fp-{secrets.token_hex(2)}", envs=("dev", ENV))
    try:
        b.build_and_push()
        b.ok("setup", "dev")
        b.ok("deploy", "dev")
        b.ok("setup", ENV)
        b.ok("deploy", ENV)
        b.write_note(ENV)
        yield b
    finally:
        b.cleanup()


def start_and_reach(bed: Bed, stage: str, tmp_path):
    migration, env, step, kind = STAGES[stage]
    old = bed.serving(ENV)
    assert old
    bed.write_note(ENV)
    new = bed.new_version(migration=migration, dev=True)
    before = bed.history_ids(ENV)
    env = dict(env)
    mark = tmp_path / "slow-tests-running"
    if stage == "validate":
        env["FAULTS_SLOW_TESTS_MARK"] = str(mark)
    run = Run(bed, "deploy", ENV, extra_env=env)
    run.wait_step(step, kind)
    if stage == "migrate":
        poll(lambda: bed.pg_sleeping(ENV), 60, "the slow migration running")
    if stage == "validate":
        poll(mark.exists, 120, "the slow validation running")
    return run, old, new, before


@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("stage", list(STAGES))
def test_controller_signal(bed, stage, sig, tmp_path):
    run, old, new, before = start_and_reach(bed, stage, tmp_path)
    run.kill(SIGNALS[sig])
    rc = run.wait(300) if sig == "SIGTERM" else None
    # SIGKILL: the runner goes on; validate_command's verdict never comes: the previous version
    # is put back. SIGTERM: a cancel, undone to the previous version.
    obs = bed.check_after_fault(ENV, before, old, new, expect="old",
                                results=("failed", "interrupted"),
                                label=f"prod {sig} {stage}")
    if sig == "SIGTERM":
        assert rc != 0, run.tail()
    obs.update(env=ENV, fault=sig, stage=stage, rc=rc)
    record(obs)


def test_ssh_cut_during_health(bed, tmp_path):
    run, old, new, before = start_and_reach(bed, "health", tmp_path)
    pids = run.ssh_processes()
    assert pids, "no ssh process of this conveyor found"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    rc = run.wait(300)
    obs = bed.check_after_fault(ENV, before, old, new, expect="new", results=("ok",),
                                label="prod ssh-cut health")
    assert rc == 0, run.tail()
    obs.update(env=ENV, fault="ssh cut", stage="health", rc=rc, killed=len(pids))
    record(obs)


def test_registry_down(bed):
    """The registry is stopped (by its PID) for the whole deploy of an image prod has not pulled:
    the deploy fails at pull, before anything stops; prod keeps serving."""
    tb = bed_script()
    old = bed.serving(ENV)
    bed.write_note(ENV)
    new = bed.new_version(dev=True)
    before = bed.history_ids(ENV)
    app_before = bed.vms[ENV].inspect(bed.container(ENV))
    with tb.state_lock():
        pid = tb.REGISTRY_SVC.pid()
        assert pid, "the test bed's registry runs no process of its own"
        try:
            tb.REGISTRY_SVC.stop(30)
            assert not tb.registry_ready()
            p = bed.run("deploy", ENV, "--json", timeout=300)
            app_during = bed.vms[ENV].inspect(bed.container(ENV))
            served_during = bed.serving(ENV)
        finally:
            proc = tb.REGISTRY_SVC.spawn(["/usr/bin/docker-registry", "serve",
                                          str(tb.REGISTRY_DIR / "config.yml")])
            tb.wait_until(tb.registry_ready, "registry", "registry", 30, proc, tb.REGISTRY_SVC.log)
    assert p.returncode != 0, p.stdout[-3000:]
    assert served_during == old
    assert app_during["State"]["StartedAt"] == app_before["State"]["StartedAt"], \
        "the prod app was restarted although the image could not be pulled"
    obs = bed.check_after_fault(ENV, before, old, new, expect="old", results=("failed",),
                                label="prod registry-down pull")
    rec = next(e for e in bed.history(ENV) if e["id"] not in before)
    steps = [s["name"] for s in rec["steps"]]
    assert "stop" not in steps or rec["steps"][steps.index("stop")]["status"] != "ok", rec
    obs.update(env=ENV, fault="registry down", stage="pull", rc=p.returncode)
    record(obs)
