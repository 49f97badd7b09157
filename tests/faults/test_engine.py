"""The dev VM's Docker engine restarted in the middle of a deploy (during the slow migration):
the engine stops every container (the runner, the migration, the database, the app), comes back,
starts those with a restart policy; the runner (on-failure) starts again and recovers the run
on its own. See conftest.py for what is asserted."""

from __future__ import annotations

import secrets

import pytest

from tests.faults.conftest import Bed, Run, bed_script, poll, record

ENV = "dev"


@pytest.fixture(scope="module")
def bed(testbed, tmp_path_factory):
    b = Bed.make(tmp_path_factory.mktemp("faults-engine"), testbed,
                 app=f"notes-fe-{secrets.token_hex(2)}", envs=(ENV,))
    try:
        b.build_and_push()
        b.ok("setup", ENV)
        b.ok("deploy", ENV)
        b.write_note(ENV)
        yield b
    finally:
        b.cleanup()


def test_engine_restarted_during_migrate(bed):
    tb = bed_script()
    vm = tb.VMS[ENV]
    old = bed.serving(ENV)
    bed.write_note(ENV)
    new = bed.new_version(migration=True)
    before = bed.history_ids(ENV)
    run = Run(bed, "deploy", ENV)
    run.wait_step("migrate")
    poll(lambda: bed.pg_sleeping(ENV), 60, "the slow migration running")
    with tb.state_lock():
        pid = tb.vm_dockerd(vm).pid()
        assert pid, f"the {ENV} VM's dockerd is not the test bed's own"
        tb.stop_vm_engine(vm)
        assert not tb.docker_ping(vm.socket)
        proc = tb.start_vm_dockerd(vm)
        tb.wait_until(lambda: tb.docker_ping(vm.socket), "engine", f"{ENV} dockerd", 60, proc)
    rc = run.wait(400)
    obs = bed.check_after_fault(ENV, before, old, new, results=("failed", "interrupted"),
                                expect="old", label="dev engine-restart migrate")
    obs.update(env=ENV, fault="dockerd restart", stage="migrate", rc=rc)
    record(obs)
